#pragma once
// How a run is told to end (SIGINT/SIGTERM): first *stop* (no new work: nothing new is sent, a
// request still waiting for a registry's slot gives up; transfers in flight go on), then *abort*
// (transfers in flight are cut). One token, made by cmd and passed to everything that waits or
// transfers: the HTTP client (abort), per-registry limiters and the engine's queues (stop).

#include <atomic>

namespace util {

class CancelToken {
public:
  /// Take no new work.
  void stop() { m_stop = true; }
  /// Cut what is in flight (implies stop).
  void abort() {
    m_stop = true;
    m_abort = true;
  }
  bool stopped() const { return m_stop.load(std::memory_order_relaxed); }
  bool aborted() const { return m_abort.load(std::memory_order_relaxed); }

private:
  std::atomic<bool> m_stop{false};
  std::atomic<bool> m_abort{false};
};

} // namespace util
