#include "http/rate.hpp"

#include <algorithm>
#include <thread>

namespace http {

RateLimit::RateLimit(long long bytes_per_second, std::chrono::milliseconds burst)
    : m_rate(std::max(1LL, bytes_per_second)), m_burst(burst) {}

void RateLimit::take(std::size_t bytes, const util::CancelToken* cancel) {
  if (bytes == 0)
    return;
  clock::time_point wake;
  {
    std::lock_guard lock(m_mutex);
    const auto now = clock::now();
    // An idle budget does not save up beyond the burst.
    m_tat = std::max(m_tat, now - m_burst);
    m_tat += std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(static_cast<double>(bytes) / m_rate));
    wake = m_tat - m_burst;
  }
  // Sleep in slices, so that an abort cuts the wait.
  while (clock::now() < wake) {
    if (cancel && cancel->aborted())
      return;
    std::this_thread::sleep_for(std::min<clock::duration>(wake - clock::now(), std::chrono::milliseconds(100)));
  }
}

} // namespace http
