#pragma once
// Orderly shutdown on SIGINT/SIGTERM: the first signal stops new work (in-flight transfers may
// finish), after the grace period or a second signal in-flight transfers are aborted. Signals are
// taken by a dedicated thread (sigwait), never by an async handler.

#include <atomic>
#include <chrono>
#include <thread>

namespace cmd {

class SignalGuard {
public:
  explicit SignalGuard(std::chrono::seconds grace);
  ~SignalGuard();
  SignalGuard(const SignalGuard&) = delete;
  SignalGuard& operator=(const SignalGuard&) = delete;

  /// Set by the first SIGINT/SIGTERM: take no new work.
  const std::atomic<bool>* stop() const { return &m_stop; }
  /// Set after the grace period or by a second signal: abort transfers.
  const std::atomic<bool>* abort() const { return &m_abort; }
  /// The signal received (0 = none).
  int signal() const { return m_signal.load(); }

private:
  void run();
  std::chrono::seconds m_grace;
  std::atomic<bool> m_stop{false};
  std::atomic<bool> m_abort{false};
  std::atomic<int> m_signal{0};
  std::atomic<bool> m_done{false};
  std::thread m_thread;
};

} // namespace cmd
