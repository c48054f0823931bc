#include "registry/limiter.hpp"

#include <algorithm>
#include <functional>
#include <thread>

namespace registry {

Limiter::Limiter(int max_in_flight, double per_second) : m_max(max_in_flight) {
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

Limiter::Slot Limiter::acquire() {
  if (!limited())
    return Slot();
  std::chrono::steady_clock::time_point turn;
  {
    std::unique_lock lock(m_mutex);
    if (m_max > 0) {
      m_cv.wait(lock, [&] { return m_in_use < m_max; });
      ++m_in_use;
    }
    if (m_interval.count() > 0) {
      turn = std::max(std::chrono::steady_clock::now(), m_next);
      m_next = turn + m_interval;
    }
  }
  if (m_interval.count() > 0)
    std::this_thread::sleep_until(turn);
  return m_max > 0 ? Slot(this) : Slot();
}

void Limiter::release() {
  {
    std::lock_guard lock(m_mutex);
    --m_in_use;
  }
  m_cv.notify_one();
}

SlotPair acquire_both(Limiter* a, Limiter* b) {
  SlotPair pair;
  if (a == b)
    b = nullptr; // one registry on both ends: one slot
  if (a && b && std::less<Limiter*>()(b, a))
    std::swap(a, b);
  if (a)
    pair.first = a->acquire();
  if (b)
    pair.second = b->acquire();
  return pair;
}

} // namespace registry
