#include "cmd/progress.hpp"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <unistd.h>

namespace cmd {

ProgressReporter::ProgressReporter(const migrate::Progress& progress, std::shared_ptr<spdlog::logger> log,
                                   std::chrono::seconds interval)
    : m_progress(progress), m_log(std::move(log)), m_interval(interval), m_tty(isatty(STDERR_FILENO) == 1),
      m_start(std::chrono::steady_clock::now()) {
  if (m_interval.count() > 0)
    m_thread = std::thread([this] { run(); });
}

ProgressReporter::~ProgressReporter() {
  {
    std::lock_guard lock(m_mutex);
    m_stop = true;
  }
  m_cv.notify_all();
  if (m_thread.joinable())
    m_thread.join();
  if (m_interval.count() == 0)
    return;
  if (m_tty)
    std::fputs("\r\033[K", stderr);
  else
    m_log->info("{}", line()); // the final state, so a log always ends with one
}

std::string ProgressReporter::line() const {
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - m_start).count();
  std::size_t total = m_progress.images_total, done = m_progress.images_done, failed = m_progress.images_failed;
  double mb = static_cast<double>(m_progress.bytes.load()) / 1e6;
  double rate = secs > 0 ? mb / secs : 0;
  std::string eta = "?";
  if (done > 0 && done < total) {
    long s = static_cast<long>(secs / static_cast<double>(done) * static_cast<double>(total - done));
    eta = std::to_string(s / 60) + "m" + std::to_string(s % 60) + "s";
  } else if (done == total) {
    eta = "0s";
  }
  char buf[256];
  std::snprintf(buf, sizeof buf, "progress: %zu/%zu images (%zu failed), %.1f MB, %.1f MB/s, ETA %s", done, total,
                failed, mb, rate, eta.c_str());
  return buf;
}

void ProgressReporter::run() {
  auto period = m_tty ? std::chrono::seconds(1) : m_interval;
  std::unique_lock lock(m_mutex);
  while (!m_cv.wait_for(lock, period, [&] { return m_stop; })) {
    if (m_tty)
      std::fprintf(stderr, "\r\033[K%s", line().c_str());
    else
      m_log->info("{}", line());
  }
}

} // namespace cmd
