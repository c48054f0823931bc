#pragma once
// Caps on what one registry host gets from us: requests in flight at once, and requests per second.
// For rate-limited registries (Docker Hub, quota'd cloud registries) and fragile on-premise ones.
// Shared by every Registry object that talks to the host.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>

#include "util/cancel.hpp"

namespace registry {

class Limiter {
public:
  /// max_in_flight <= 0: no cap; per_second <= 0: no cap. Once `cancel` is stopped, a request
  /// still waiting for its turn gives up instead of being sent (no new work): the cap holds while
  /// the run winds down.
  Limiter(int max_in_flight, double per_second, const util::CancelToken* cancel = nullptr);
  Limiter(const Limiter&) = delete;
  Limiter& operator=(const Limiter&) = delete;

  /// Held for the duration of one request (or one streamed blob transfer).
  class Slot {
  public:
    Slot() = default;
    explicit Slot(Limiter* owner) : m_owner(owner) {}
    Slot(Slot&& other) noexcept : m_owner(other.m_owner) { other.m_owner = nullptr; }
    Slot& operator=(Slot&& other) noexcept;
    ~Slot();

  private:
    Limiter* m_owner = nullptr;
  };

  /// Waits for a free slot, then for the request's turn under the per-second cap; nullopt when the
  /// run was stopped meanwhile (the request must not be sent).
  std::optional<Slot> acquire();

  bool limited() const { return m_max > 0 || m_interval.count() > 0; }

private:
  void release();

  std::mutex m_mutex;
  std::condition_variable m_cv;
  int m_max;
  int m_in_use = 0;
  std::chrono::steady_clock::duration m_interval{0};
  std::chrono::steady_clock::time_point m_next{};
  const util::CancelToken* m_cancel;
};

/// Slots from two limiters (a blob streamed from one registry into another), always taken in the
/// same order so that two transfers in opposite directions cannot wait for each other forever.
struct SlotPair {
  Limiter::Slot first;
  Limiter::Slot second;
};
/// nullopt when the run was stopped while waiting for either.
std::optional<SlotPair> acquire_both(Limiter* a, Limiter* b);

} // namespace registry
