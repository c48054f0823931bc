#include "cmd/progress.hpp"

#include "cmd/logging.hpp"

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
    show_live_line("");
  else
    m_log->info("{}", line()); // the final state, so a log always ends with one
}

namespace {
std::string duration_text(double seconds) {
  const long s = static_cast<long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, s / 60 % 60);
  else
    std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  return buf;
}
} // namespace

std::string ProgressReporter::line() const {
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - m_start).count();
  const std::size_t total = m_progress.images_total, done = m_progress.images_done, failed = m_progress.images_failed;
  const double mb = static_cast<double>(m_progress.bytes.load()) / 1e6;
  const double rate = secs > 0 ? mb / secs : 0;
  // By bytes: the images under way know their blobs' sizes; the ones not started yet are taken to
  // be as large as those on average. The ETA is what is left over the pace of the bytes settled.
  const double planned = static_cast<double>(m_progress.bytes_planned.load());
  const double settled = static_cast<double>(m_progress.bytes_settled.load());
  const std::size_t images_planned = m_progress.images_planned;
  double expected = planned;
  if (images_planned > 0 && total > images_planned)
    expected += planned / static_cast<double>(images_planned) * static_cast<double>(total - images_planned);
  const std::string eta = done >= total                                   ? std::string("0s")
                          : settled > 0 && secs > 0 && expected > settled ? duration_text((expected - settled) / (settled / secs))
                          : done > 0 ? duration_text(secs / static_cast<double>(done) * static_cast<double>(total - done))
                                     : std::string("?");
  char buf[256];
  std::snprintf(buf, sizeof buf, "progress: %zu/%zu images (%zu failed), %.1f/%.1f MB, %.1f MB/s, ETA %s", done, total,
                failed, settled / 1e6, expected / 1e6, rate, eta.c_str());
  return buf;
}

void ProgressReporter::run() {
  auto period = m_tty ? std::chrono::seconds(1) : m_interval;
  std::unique_lock lock(m_mutex);
  while (!m_cv.wait_for(lock, period, [&] { return m_stop; })) {
    if (m_tty)
      show_live_line(line());
    else
      m_log->info("{}", line());
  }
}

} // namespace cmd
