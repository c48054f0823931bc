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

Limiter::Slot::Slot(Limiter* owner, Work work, bool counted) : m_owner(owner), m_work(work), m_counted(counted) {}

Limiter::Slot::Slot(Slot&& other) noexcept
    : m_owner(other.m_owner), m_work(other.m_work), m_counted(other.m_counted), m_outcome(other.m_outcome),
      m_start(other.m_start), m_epoch(other.m_epoch) {
  other.m_owner = nullptr;
}

Limiter::Slot::~Slot() { release(); }

void Limiter::Slot::release() {
  if (m_owner)
    m_owner->release(m_work, m_counted, m_outcome, m_start, m_epoch);
  m_owner = nullptr;
}

Limiter::Slot& Limiter::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    release();
    m_owner = other.m_owner;
    m_work = other.m_work;
    m_counted = other.m_counted;
    m_outcome = other.m_outcome;
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
  Slot slot(this, work, true);
  slot.m_start = std::chrono::steady_clock::now();
  slot.m_epoch = w.epoch;
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

void Limiter::release(Work work, bool counted, Outcome outcome, std::chrono::steady_clock::time_point start,
                      std::uint64_t epoch) {
  int decreased_to = 0;
  {
    std::lock_guard lock(m_mutex);
    if (counted)
      --m_in_use;
    Window& w = of(work);
    const int in_flight = w.in_use; // this request included
    --w.in_use;
    if (m_adaptive && outcome != Outcome::none) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      // A check that took far longer than the fastest (8 times, and a second more): the registry is
      // queueing requests. Transfers vary with their size: only their errors count.
      bool slow = false;
      if (work == Work::check && outcome == Outcome::ok) {
        slow = w.fastest > 0 && seconds > std::max(8 * w.fastest, w.fastest + 1.0);
        if (w.fastest == 0 || seconds < w.fastest)
          w.fastest = seconds;
      }
      if (outcome == Outcome::congested || slow) {
        // Once per round: answers to requests sent before the last decrease say nothing new.
        if (epoch == w.epoch) {
          w.size = std::max(1.0, std::min(w.size, static_cast<double>(in_flight)) / 2);
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
  if (decreased_to && m_on_decrease)
    m_on_decrease(work, decreased_to);
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
  Limiter* order[2] = {a, b};
  Limiter::Slot* into[2] = {&pair.first, &pair.second};
  if (a && b && std::less<Limiter*>()(b, a)) {
    std::swap(order[0], order[1]);
    std::swap(into[0], into[1]);
  }
  for (int i = 0; i < 2; ++i) {
    if (!order[i])
      continue;
    auto slot = order[i]->acquire(work);
    if (!slot)
      return std::nullopt;
    *into[i] = std::move(*slot);
  }
  return pair;
}

} // namespace registry
