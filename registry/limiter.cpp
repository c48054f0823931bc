#include "registry/limiter.hpp"

#include <algorithm>
#include <functional>
#include <thread>

namespace registry {

Limiter::Limiter(int max_in_flight, double per_second, const util::CancelToken* cancel)
    : m_max(max_in_flight), m_cancel(cancel) {
  if (per_second > 0)
    m_interval = std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(1.0 / per_second));
}

Limiter::Slot::~Slot() {
  if (m_owner)
    m_owner->release();
}

Limiter::Slot& Limiter::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    if (m_owner)
      m_owner->release();
    m_owner = other.m_owner;
    other.m_owner = nullptr;
  }
  return *this;
}

std::optional<Limiter::Slot> Limiter::acquire() {
  if (!limited())
    return Slot();
  auto cancelled = [&] { return m_cancel && m_cancel->stopped(); };
  std::chrono::steady_clock::time_point turn;
  {
    std::unique_lock lock(m_mutex);
    if (m_max > 0) {
      // Woken by release(); every 100 ms also looks at the cancel token. A waiter that sees the run
      // stopped leaves without a slot: taking one over the cap would send the fragile registry a
      // burst exactly when the user asked for less.
      while (m_in_use >= m_max && !cancelled())
        m_cv.wait_for(lock, std::chrono::milliseconds(100));
      if (m_in_use >= m_max)
        return std::nullopt;
      ++m_in_use;
    }
    if (m_interval.count() > 0) {
      turn = std::max(std::chrono::steady_clock::now(), m_next);
      m_next = turn + m_interval;
    }
  }
  Slot slot = m_max > 0 ? Slot(this) : Slot();
  if (m_interval.count() > 0) {
    while (std::chrono::steady_clock::now() < turn && !cancelled())
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(turn - std::chrono::steady_clock::now(),
                                                                                std::chrono::milliseconds(100)));
    if (std::chrono::steady_clock::now() < turn)
      return std::nullopt; // stopped before its turn: not sent
  }
  return slot;
}

void Limiter::release() {
  {
    std::lock_guard lock(m_mutex);
    --m_in_use;
  }
  m_cv.notify_one();
}

std::optional<SlotPair> acquire_both(Limiter* a, Limiter* b) {
  SlotPair pair;
  if (a == b)
    b = nullptr; // one registry on both ends: one slot
  if (a && b && std::less<Limiter*>()(b, a))
    std::swap(a, b);
  if (a) {
    auto slot = a->acquire();
    if (!slot)
      return std::nullopt;
    pair.first = std::move(*slot);
  }
  if (b) {
    auto slot = b->acquire();
    if (!slot)
      return std::nullopt;
    pair.second = std::move(*slot);
  }
  return pair;
}

} // namespace registry
