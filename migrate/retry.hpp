#pragma once
// Retries inside a task: transient failures (network, timeouts, 408/429/5xx) are tried again with
// backoff (doubling, jitter, a registry's Retry-After up to 2 minutes), up to `attempts` tries.
// What is still failing after that goes to the next pass (Engine::run); the rest fails at once.

#include "http/result.hpp"
#include "util/cancel.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>

namespace migrate {

class Retrier {
public:
  Retrier(int attempts, std::chrono::milliseconds backoff, const util::CancelToken* cancel,
          std::shared_ptr<spdlog::logger> log)
      : m_attempts(attempts), m_backoff(backoff), m_cancel(cancel), m_log(std::move(log)) {}

  bool stopped() const { return m_cancel && m_cancel->stopped(); }
  spdlog::logger& log() const { return *m_log; }

  /// Runs f until it succeeds, fails for good, or runs out of attempts; backs off in between.
  /// `first`: the error of a first attempt already made (a HEAD sent in a batch), waited for and
  /// counted like any other.
  template <class F> auto operator()(const std::string& what, F&& f, const http::Error* first = nullptr) const -> decltype(f()) {
    for (int attempt = 1;; ++attempt) {
      auto r = attempt == 1 && first ? decltype(f())(*first) : f();
      if (r || !r.error().retryable() || attempt >= m_attempts || stopped())
        return r;
      auto delay = m_backoff * (1 << (attempt - 1));
      if (r.error().retry_after.count() > 0)
        delay = std::min<std::chrono::milliseconds>(r.error().retry_after, std::chrono::minutes(2));
      static thread_local std::mt19937 rng(std::random_device{}());
      delay += std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 100)(rng));
      // A registry that cannot be reached at all is said once, not once per request and attempt.
      if (auto address = http::unreachable_address(r.error().message); !address.empty()) {
        if (first_time_unreachable(address))
          m_log->warn("{} cannot be reached: {} (every request to it is retried; the images that need it fail "
                      "if it stays so)", address, r.error().message);
        else
          m_log->debug("{}: {} (request attempt {}/{})", what, r.error().message, attempt, m_attempts);
      } else {
        m_log->warn("{}: {} (request attempt {}/{}, retrying in {} ms)", what, r.error().message, attempt, m_attempts,
                    delay.count());
      }
      auto until = std::chrono::steady_clock::now() + delay;
      while (std::chrono::steady_clock::now() < until && !stopped())
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

private:
  bool first_time_unreachable(const std::string& address) const {
    std::lock_guard lock(m_said->mutex);
    return m_said->unreachable.insert(address).second;
  }
  struct Said {
    std::mutex mutex;
    std::set<std::string> unreachable;
  };
  std::shared_ptr<Said> m_said = std::make_shared<Said>();
  int m_attempts;
  std::chrono::milliseconds m_backoff;
  const util::CancelToken* m_cancel;
  std::shared_ptr<spdlog::logger> m_log;
};

} // namespace migrate
