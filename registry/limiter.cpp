#include "registry/limiter.hpp"

#include <algorithm>
#include <functional>
#include <thread>

namespace registry {

Limiter::Limiter(int max_in_flight, double per_second, const util::CancelToken* cancel, bool adaptive, int ceiling)
    : m_max(max_in_flight), m_adaptive(adaptive), m_ceiling(std::max(1, max_in_flight > 0 ? max_in_flight : ceiling)),
      m_cancel(cancel) {
  if (per_second > 0)
    m_interval = std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(1.0 / per_second));
  m_checks.size = m_transfers.size = m_ceiling;
}

Limiter::Slot::Slot(Slot&& other) noexcept { *this = std::move(other); }

Limiter::Slot::~Slot() { release(); }

void Limiter::Slot::release() {
  if (m_owner)
    m_owner->release(*this);
  m_owner = nullptr;
}

Limiter::Slot& Limiter::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    release();
    m_owner = other.m_owner;
    m_work = other.m_work;
    m_outcome = other.m_outcome;
    m_timed = other.m_timed;
    m_flight = other.m_flight;
    m_start = other.m_start;
    m_epoch = other.m_epoch;
    other.m_owner = nullptr;
  }
  return *this;
}

bool Limiter::free_locked(Work work) {
  if (m_max > 0 && m_in_use >= m_max)
    return false;
  if (!m_adaptive)
    return true;
  const Window& w = of(work);
  return w.in_use < std::max(1, static_cast<int>(w.size));
}

Limiter::Slot Limiter::take_locked(Work work) {
  ++m_in_use;
  Window& w = of(work);
  ++w.in_use;
  w.peak = std::max(w.peak, w.in_use);
  Slot slot(this, work);
  slot.m_start = std::chrono::steady_clock::now();
  slot.m_epoch = w.epoch;
  slot.m_flight = w.in_use;
  return slot;
}

std::optional<Limiter::Slot> Limiter::acquire(Work work) {
  if (!limited() && !m_adaptive)
    return Slot();
  auto cancelled = [&] { return m_cancel && m_cancel->stopped(); };
  std::chrono::steady_clock::time_point turn;
  Slot slot;
  {
    std::unique_lock lock(m_mutex);
    // Woken by release(); every 100 ms also looks at the cancel token. A waiter that sees the run
    // stopped leaves without a slot: taking one over the cap would send the fragile registry a
    // burst exactly when the user asked for less.
    while (!free_locked(work) && !cancelled())
      m_cv.wait_for(lock, std::chrono::milliseconds(100));
    if (!free_locked(work))
      return std::nullopt;
    slot = take_locked(work);
    if (m_interval.count() > 0) {
      turn = std::max(std::chrono::steady_clock::now(), m_next);
      m_next = turn + m_interval;
    }
  }
  if (m_interval.count() > 0) {
    while (std::chrono::steady_clock::now() < turn && !cancelled())
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(turn - std::chrono::steady_clock::now(),
                                                                                std::chrono::milliseconds(100)));
    if (std::chrono::steady_clock::now() < turn)
      return std::nullopt; // stopped before its turn: not sent (the slot is given back)
    slot.m_start = std::chrono::steady_clock::now(); // its latency counts from when it may go
  }
  return slot;
}

std::optional<Limiter::Slot> Limiter::try_acquire(Work work) {
  if (!limited() && !m_adaptive)
    return Slot();
  if (m_interval.count() > 0)
    return std::nullopt; // paced requests wait their turn: acquire()
  std::lock_guard lock(m_mutex);
  if (!free_locked(work))
    return std::nullopt;
  return take_locked(work);
}

void Limiter::release(const Slot& slot) {
  const Work work = slot.m_work;
  const Outcome outcome = slot.m_outcome;
  const std::uint64_t epoch = slot.m_epoch;
  int decreased_from = 0, decreased_to = 0;
  bool decreased_by_slowness = false;
  {
    std::lock_guard lock(m_mutex);
    --m_in_use;
    Window& w = of(work);
    // The load it met: the most in flight when it was sent or when it ended, itself included.
    const int flight = std::max(slot.m_flight, w.in_use);
    --w.in_use;
    if (m_adaptive && outcome != Outcome::none) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - slot.m_start).count();
      // A HEAD that took far longer than the fastest (8 times, and a second more): the registry is
      // queueing requests. Other requests' times depend on what they carry: only their errors count.
      bool slow = false;
      if (slot.m_timed && outcome == Outcome::ok) {
        slow = w.fastest > 0 && seconds > std::max(8 * w.fastest, w.fastest + 1.0);
        if (w.fastest == 0 || seconds < w.fastest)
          w.fastest = seconds;
      }
      if (outcome == Outcome::congested || slow) {
        // Once per round: answers to requests sent before the last decrease say nothing new.
        if (epoch == w.epoch) {
          decreased_from = std::max(1, static_cast<int>(w.size));
          decreased_by_slowness = outcome != Outcome::congested;
          w.size = std::max(1.0, std::min(w.size, static_cast<double>(flight)) / 2);
          ++w.epoch;
          ++m_decreases;
          decreased_to = std::max(1, static_cast<int>(w.size));
          w.peak = w.in_use;
          w.good = 0;
        }
      } else if (epoch == w.epoch && w.peak >= static_cast<int>(w.size) && ++w.good >= static_cast<int>(w.size)) {
        // A window's worth of good answers while it was used in full: one more.
        w.size = std::min(static_cast<double>(m_ceiling), w.size + 1);
        w.peak = w.in_use;
        w.good = 0;
      }
    }
  }
  m_cv.notify_all();
  if (decreased_to && decreased_to < decreased_from && m_on_decrease)
    m_on_decrease(work, decreased_from, decreased_to, decreased_by_slowness);
}

int Limiter::window(Work work) const {
  std::lock_guard lock(m_mutex);
  return std::max(1, static_cast<int>(work == Work::check ? m_checks.size : m_transfers.size));
}

std::uint64_t Limiter::decreases() const {
  std::lock_guard lock(m_mutex);
  return m_decreases;
}

std::optional<SlotPair> acquire_both(Limiter* a, Limiter* b, Limiter::Work work) {
  SlotPair pair;
  if (a == b)
    b = nullptr; // one registry on both ends: one slot
  if (!a || !b) {
    Limiter* only = a ? a : b;
    if (only) {
      auto slot = only->acquire(work);
      if (!slot)
        return std::nullopt;
      (a ? pair.first : pair.second) = std::move(*slot);
    }
    return pair;
  }
  if (a->paced() || b->paced()) {
    // Paced requests wait for their turn: both in one fixed order, so that two transfers in
    // opposite directions cannot wait for each other forever.
    if (std::less<Limiter*>()(b, a)) {
      auto second = b->acquire(work);
      auto first = second ? a->acquire(work) : std::nullopt;
      if (!first)
        return std::nullopt;
      pair.first = std::move(*first);
      pair.second = std::move(*second);
      return pair;
    }
    auto first = a->acquire(work);
    auto second = first ? b->acquire(work) : std::nullopt;
    if (!second)
      return std::nullopt;
    pair.first = std::move(*first);
    pair.second = std::move(*second);
    return pair;
  }
  // Never wait for one while holding the other: a slow or throttled registry would hold places of
  // the other that transfers from elsewhere need (and two transfers in opposite directions could
  // wait for each other). Wait for one, then take the other only if it is free at once; else let
  // the first go and wait for the second instead.
  Limiter* wait_on = a;
  while (true) {
    Limiter* other = wait_on == a ? b : a;
    auto first = wait_on->acquire(work);
    if (!first)
      return std::nullopt;
    if (auto second = other->try_acquire(work)) {
      pair.first = std::move(wait_on == a ? *first : *second);
      pair.second = std::move(wait_on == a ? *second : *first);
      return pair;
    }
    wait_on = other;
  }
}

} // namespace registry
