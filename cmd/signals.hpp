#pragma once
// Orderly shutdown on SIGINT/SIGTERM: the first signal stops new work (in-flight transfers may
// finish), after the grace period or a second signal in-flight transfers are aborted. Signals are
// taken by a dedicated thread (sigwait), never by an async handler.

#include "util/cancel.hpp"

#include <atomic>
#include <chrono>
#include <thread>

namespace cmd {

class SignalGuard {
public:
  explicit SignalGuard(std::chrono::milliseconds grace);
  ~SignalGuard();
  SignalGuard(const SignalGuard&) = delete;
  SignalGuard& operator=(const SignalGuard&) = delete;

  /// Stopped by the first SIGINT/SIGTERM (take no new work), aborted after the grace period or by
  /// a second signal (cut transfers in flight).
  const util::CancelToken* token() const { return &m_token; }
  /// The signal received (0 = none).
  int signal() const { return m_signal.load(); }

private:
  void run();
  std::chrono::milliseconds m_grace;
  util::CancelToken m_token;
  std::atomic<int> m_signal{0};
  std::atomic<bool> m_done{false};
  std::thread m_thread;
};

} // namespace cmd
