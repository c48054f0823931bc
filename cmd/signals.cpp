#include "cmd/signals.hpp"

#include <pthread.h>
#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <ctime>

namespace cmd {

namespace {
sigset_t watched() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR2); // our own wake-up at shutdown
  return set;
}
} // namespace

SignalGuard::SignalGuard(std::chrono::milliseconds grace) : m_grace(grace) {
  // Block before any other thread exists so every thread inherits the mask.
  sigset_t set = watched();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  m_thread = std::thread([this] { run(); });
}

SignalGuard::~SignalGuard() {
  m_done = true;
  pthread_kill(m_thread.native_handle(), SIGUSR2);
  m_thread.join();
  sigset_t set = watched();
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

void SignalGuard::run() {
  sigset_t set = watched();
  while (!m_done) {
    int sig = 0;
    if (!m_token.stopped() || m_token.aborted()) {
      // Running, or already aborting: only a signal can change anything now (the grace period is
      // over once and for all, and said so once).
      if (sigwait(&set, &sig) != 0 || m_done)
        continue;
    } else {
      // Stopping: wait for a second signal or the end of the grace period.
      const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(m_grace);
      timespec ts{static_cast<time_t>(seconds.count()),
                  static_cast<long>(std::chrono::duration_cast<std::chrono::nanoseconds>(m_grace - seconds).count())};
      siginfo_t info;
      sig = sigtimedwait(&set, &info, &ts);
      if (m_done)
        return;
      if (sig < 0) {
        if (errno == EINTR)
          continue;
        std::fprintf(stderr, "image-migrator: grace period over, aborting transfers in flight\n");
        m_token.abort();
        continue;
      }
    }
    if (sig == SIGUSR2)
      continue;
    if (!m_token.stopped()) {
      m_signal = sig;
      m_token.stop();
      std::fprintf(stderr, "image-migrator: %s received: finishing transfers in flight (%.3gs grace), no new work; "
                           "send it again to abort now\n",
                   sig == SIGINT ? "SIGINT" : "SIGTERM", std::chrono::duration<double>(m_grace).count());
    } else if (!m_token.aborted()) {
      std::fprintf(stderr, "image-migrator: second signal, aborting transfers in flight\n");
      m_token.abort();
    }
  }
}

} // namespace cmd
