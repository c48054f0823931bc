#pragma once
// Caps on what one registry host gets from us: requests in flight at once, and requests per second.
// For rate-limited registries (Docker Hub, quota'd cloud registries) and fragile on-premise ones.
// Shared by every Registry object that talks to the host.
//
// Adaptive (the default): beside the user's caps, each kind of work (checks: HEADs, manifests,
// mounts; transfers: blob bodies) has a window of requests in flight that follows what the
// registry says, as TCP's congestion window does: a 429, a 503 or a timeout (or a HEAD that
// took far longer than the fastest one) halves it, from what was in flight when the request
// was sent or ended (the more), once per round; each window's worth of answers that came back well, while the window was full, widens
// it by one, up to the ceiling (the user's maxConcurrency, else `ceiling`). It starts at the
// ceiling: a registry that never complains is never slowed.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>

#include "util/cancel.hpp"

namespace registry {

class Limiter {
public:
  /// max_in_flight <= 0: no cap; per_second <= 0: no cap. Once `cancel` is stopped, a request
  /// still waiting for its turn gives up instead of being sent (no new work): the cap holds while
  /// the run winds down.
  /// `adaptive`: the windows described above, below `ceiling` (or max_in_flight when > 0).
  Limiter(int max_in_flight, double per_second, const util::CancelToken* cancel = nullptr, bool adaptive = false,
          int ceiling = 64);
  Limiter(const Limiter&) = delete;
  Limiter& operator=(const Limiter&) = delete;

  enum class Work { check, transfer };
  /// How a request ended, for the windows: said by the holder of its slot before it is released.
  enum class Outcome {
    none,     ///< nothing learnt (not sent, cancelled, an error that is not the registry's load)
    ok,       ///< answered, and not too busy to answer
    congested ///< 429, 503 or a timeout: the registry is overloaded
  };

  /// Held for the duration of one request (or one streamed blob transfer).
  class Slot {
  public:
    Slot() = default;
    Slot(Limiter* owner, Work work) : m_owner(owner), m_work(work) {}
    Slot(Slot&& other) noexcept;
    Slot& operator=(Slot&& other) noexcept;
    ~Slot();
    /// How the request went (the last word counts); the window learns it when the slot is released.
    void outcome(Outcome o) { m_outcome = o; }
    /// outcome() from an HTTP status: 429 and 503 congested, any other answer ok.
    void status(long code) { m_outcome = code == 429 || code == 503 ? Outcome::congested : Outcome::ok; }
    /// Its time says something about the registry's load: a HEAD (manifest or blob), whose cost
    /// does not depend on what it names. Only these set and meet the "far slower" mark.
    void timed() { m_timed = true; }

  private:
    friend class Limiter;
    void release();
    Limiter* m_owner = nullptr;
    Work m_work = Work::check;
    Outcome m_outcome = Outcome::none;
    bool m_timed = false;
    int m_flight = 0; ///< requests of its kind in flight when it was sent, itself included
    std::chrono::steady_clock::time_point m_start{};
    std::uint64_t m_epoch = 0; ///< the window's decreases before it started
  };

  /// Waits for a free slot, then for the request's turn under the per-second cap; nullopt when the
  /// run was stopped meanwhile (the request must not be sent).
  std::optional<Slot> acquire(Work work = Work::check);
  /// A slot when one is free now (no per-second cap set: see limited()), else nullopt; never waits.
  std::optional<Slot> try_acquire(Work work = Work::check);

  /// The user's caps are set (requests then go one by one through Registry::send).
  bool limited() const { return m_max > 0 || m_interval.count() > 0; }
  bool adaptive() const { return m_adaptive; }
  /// The run is stopping.
  bool stopped() const { return m_cancel && m_cancel->stopped(); }
  /// A per-second cap is set (try_acquire then never gives a slot).
  bool paced() const { return m_interval.count() > 0; }

  /// The current window of `work` (requests of it allowed in flight at once).
  int window(Work work) const;
  /// Times a window was made smaller so far (both kinds).
  std::uint64_t decreases() const;
  /// Called (outside the lock) each time a window is made smaller: from, to, and whether a slow
  /// answer (not a 429, 503 or timeout) did it. Set before use.
  void on_decrease(std::function<void(Work work, int from, int to, bool slow)> f) { m_on_decrease = std::move(f); }

private:
  struct Window {
    double size = 0;           ///< requests allowed in flight (>= 1)
    int in_use = 0;            ///< requests in flight
    std::uint64_t epoch = 0;   ///< decreases so far: an answer to a request sent before the last one does not count
    double fastest = 0;        ///< seconds of the fastest answer so far (0: none yet)
    int peak = 0;              ///< most in flight since the window last changed
    int good = 0;              ///< good answers since then, counted while the window was used in full
  };
  Window& of(Work work) { return work == Work::check ? m_checks : m_transfers; }
  bool free_locked(Work work);
  Slot take_locked(Work work);
  void release(const Slot& slot);

  mutable std::mutex m_mutex;
  std::condition_variable m_cv;
  int m_max;
  int m_in_use = 0;
  bool m_adaptive;
  int m_ceiling;
  Window m_checks, m_transfers;
  std::uint64_t m_decreases = 0;
  std::function<void(Work, int, int, bool)> m_on_decrease;
  std::chrono::steady_clock::duration m_interval{0};
  std::chrono::steady_clock::time_point m_next{};
  const util::CancelToken* m_cancel;
};

/// Slots from two limiters (a blob streamed from one registry into another), always taken in the
/// same order so that two transfers in opposite directions cannot wait for each other forever.
struct SlotPair {
  Limiter::Slot first;  ///< a's (acquire_both's first argument)
  Limiter::Slot second; ///< b's (empty when a and b are one limiter)
};
/// nullopt when the run was stopped while waiting for either.
std::optional<SlotPair> acquire_both(Limiter* a, Limiter* b, Limiter::Work work = Limiter::Work::transfer);

} // namespace registry
