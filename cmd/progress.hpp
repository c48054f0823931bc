#pragma once
// Progress while a run goes on: on a terminal, one line rewritten in place every second; otherwise a
// log line every few seconds (images done/total, bytes settled/expected, MB/s, ETA by bytes).

#include "migrate/engine.hpp"

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

namespace spdlog {
class logger;
}

namespace cmd {

class ProgressReporter {
public:
  /// interval 0 = off.
  ProgressReporter(const migrate::Progress& progress, std::shared_ptr<spdlog::logger> log, std::chrono::seconds interval);
  ~ProgressReporter();
  ProgressReporter(const ProgressReporter&) = delete;
  ProgressReporter& operator=(const ProgressReporter&) = delete;

private:
  void run();
  std::string line() const;
  const migrate::Progress& m_progress;
  std::shared_ptr<spdlog::logger> m_log;
  std::chrono::seconds m_interval;
  bool m_tty;
  std::chrono::steady_clock::time_point m_start;
  std::mutex m_mutex;
  std::condition_variable m_cv;
  bool m_stop = false;
  std::thread m_thread;
};

} // namespace cmd
