#include "cmd/signals.hpp"

#include <pthread.h>
#include <signal.h>

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

SignalGuard::SignalGuard(std::chrono::seconds grace) : m_grace(grace) {
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
    if (!m_stop) {
      if (sigwait(&set, &sig) != 0 || m_done)
        continue;
    } else {
      // Stopping: wait for a second signal or the end of the grace period.
      timespec ts{static_cast<time_t>(m_grace.count()), 0};
      siginfo_t info;
      sig = sigtimedwait(&set, &info, &ts);
      if (m_done)
        return;
      if (sig < 0) { // grace period over
        std::fprintf(stderr, "image-migrator: grace period over, aborting transfers in flight\n");
        m_abort = true;
        continue;
      }
    }
    if (sig == SIGUSR2)
      continue;
    if (!m_stop) {
      m_signal = sig;
      m_stop = true;
      std::fprintf(stderr, "image-migrator: %s received: finishing transfers in flight (%llds grace), no new work; "
                           "send it again to abort now\n",
                   sig == SIGINT ? "SIGINT" : "SIGTERM", static_cast<long long>(m_grace.count()));
    } else {
      std::fprintf(stderr, "image-migrator: second signal, aborting transfers in flight\n");
      m_abort = true;
    }
  }
}

} // namespace cmd
