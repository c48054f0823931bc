#pragma once
// One bandwidth budget shared by every transfer of a run (--limit-rate): a token bucket in its
// "theoretical arrival time" form. Each transfer takes the bytes it received; when the budget is
// spent, the taker sleeps until its bytes fit, so N concurrent transfers share the rate instead of
// each getting rate/N whether the others move or not.

#include "util/cancel.hpp"

#include <chrono>
#include <cstddef>
#include <mutex>

namespace http {

class RateLimit {
public:
  /// `bytes_per_second` > 0; bursts up to a quarter second's worth pass without waiting.
  explicit RateLimit(long long bytes_per_second, std::chrono::milliseconds burst = std::chrono::milliseconds(250));

  /// Accounts `bytes` just received; sleeps as long as they exceed the budget (less when `cancel`
  /// is aborted meanwhile).
  void take(std::size_t bytes, const util::CancelToken* cancel = nullptr);

  long long bytes_per_second() const { return m_rate; }

private:
  using clock = std::chrono::steady_clock;
  const long long m_rate;
  const clock::duration m_burst;
  std::mutex m_mutex;
  clock::time_point m_tat{}; ///< when the bytes taken so far are paid for at the rate
};

} // namespace http
