// cmd::SignalGuard: the first SIGINT stops, the grace period's end aborts, and says so once.
#include "cmd/signals.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <csignal>
#include <unistd.h>

using namespace std::chrono_literals;

namespace {
/// stderr into a file while it lives.
class CaptureStderr {
public:
  CaptureStderr() : m_path("/tmp/im-signals-" + std::to_string(::getpid()) + ".txt") {
    std::fflush(stderr);
    m_saved = ::dup(2);
    std::FILE* f = std::fopen(m_path.c_str(), "w");
    ::dup2(::fileno(f), 2);
    std::fclose(f);
  }
  ~CaptureStderr() {
    restore();
    std::remove(m_path.c_str());
  }
  std::string text() {
    restore();
    std::ifstream in(m_path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

private:
  void restore() {
    if (m_saved >= 0) {
      std::fflush(stderr);
      ::dup2(m_saved, 2);
      ::close(m_saved);
      m_saved = -1;
    }
  }
  std::string m_path;
  int m_saved = -1;
};

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
    ++n;
  return n;
}
} // namespace

TEST_CASE("cmd::SignalGuard: stop, then abort once the grace period is over, said once") {
  CaptureStderr captured;
  {
    cmd::SignalGuard guard(150ms);
    CHECK(!guard.token()->stopped());
    ::kill(::getpid(), SIGINT);
    for (int i = 0; i < 100 && !guard.token()->stopped(); ++i)
      std::this_thread::sleep_for(5ms);
    CHECK(guard.token()->stopped());
    CHECK(!guard.token()->aborted());
    CHECK(guard.signal() == SIGINT);
    // Well past several grace periods: the run has not ended (a transfer that ignores the abort).
    std::this_thread::sleep_for(800ms);
    CHECK(guard.token()->aborted());
  }
  const std::string text = captured.text();
  CHECK(count(text, "SIGINT received") == 1);
  CHECK(count(text, "grace period over") == 1);
}

TEST_CASE("cmd::SignalGuard: a second signal aborts at once") {
  CaptureStderr captured;
  {
    cmd::SignalGuard guard(60s);
    ::kill(::getpid(), SIGTERM);
    for (int i = 0; i < 100 && !guard.token()->stopped(); ++i)
      std::this_thread::sleep_for(5ms);
    ::kill(::getpid(), SIGTERM);
    for (int i = 0; i < 100 && !guard.token()->aborted(); ++i)
      std::this_thread::sleep_for(5ms);
    CHECK(guard.token()->aborted());
    CHECK(guard.signal() == SIGTERM);
  }
  const std::string text = captured.text();
  CHECK(count(text, "second signal") == 1);
  CHECK(count(text, "grace period over") == 0);
}
