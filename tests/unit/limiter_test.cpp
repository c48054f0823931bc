// registry::Limiter: requests in flight and per second per registry host, and what a stop does.
#include "registry/limiter.hpp"
#include "util/cancel.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

TEST_CASE("registry::Limiter caps requests in flight") {
  registry::Limiter limiter(2, 0);
  std::atomic<int> in_flight{0}, most{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&] {
      auto slot = limiter.acquire();
      REQUIRE(slot);
      int now = ++in_flight;
      for (int seen = most.load(); now > seen && !most.compare_exchange_weak(seen, now);) {
      }
      std::this_thread::sleep_for(20ms);
      --in_flight;
    });
  for (auto& t : threads)
    t.join();
  CHECK(most.load() == 2);
}

TEST_CASE("registry::Limiter: waiters leave without a slot when the run stops") {
  util::CancelToken token;
  registry::Limiter limiter(1, 0, &token);
  auto held = limiter.acquire();
  REQUIRE(held);
  std::atomic<int> got{0}, refused{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < 4; ++i)
    waiters.emplace_back([&] {
      auto slot = limiter.acquire();
      (slot ? got : refused)++;
    });
  std::this_thread::sleep_for(50ms);
  token.stop(); // the first Ctrl-C: waiters must not all go at once
  for (auto& t : waiters)
    t.join();
  CHECK(got.load() == 0);
  CHECK(refused.load() == 4);
  held.reset();
  // A free slot is still given (work in flight may finish its requests), never one over the cap.
  auto again = limiter.acquire();
  CHECK(again);
  CHECK(!limiter.acquire());
}

TEST_CASE("registry::Limiter paces requests per second, and a stop ends the wait") {
  registry::Limiter paced(0, 20);
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i)
    CHECK(paced.acquire());
  CHECK(std::chrono::steady_clock::now() - start >= 190ms); // 4 intervals of 50 ms
  util::CancelToken token;
  registry::Limiter slow(0, 0.2, &token); // one every 5 s
  CHECK(slow.acquire());
  std::thread stopper([&] {
    std::this_thread::sleep_for(100ms);
    token.stop();
  });
  start = std::chrono::steady_clock::now();
  CHECK(!slow.acquire());
  CHECK(std::chrono::steady_clock::now() - start < 2s);
  stopper.join();
}

TEST_CASE("registry::acquire_both takes one slot when both ends are one registry") {
  registry::Limiter one(1, 0);
  auto pair = registry::acquire_both(&one, &one);
  REQUIRE(pair);
  pair.reset(); // one slot was taken, and is free again
  util::CancelToken token;
  token.stop();
  registry::Limiter other(1, 0, &token);
  auto held = other.acquire(); // stopped before: no waiting, so a free slot is still taken
  CHECK(held);
  CHECK(!registry::acquire_both(&one, &other)); // `other` is full and the run stopped
}

namespace {
using Work = registry::Limiter::Work;
using Outcome = registry::Limiter::Outcome;

/// n slots of `work` taken at once (each must be free).
std::vector<registry::Limiter::Slot> take(registry::Limiter& l, int n, Work work = Work::check) {
  std::vector<registry::Limiter::Slot> slots;
  for (int i = 0; i < n; ++i) {
    auto s = l.try_acquire(work);
    REQUIRE(s);
    slots.push_back(std::move(*s));
  }
  return slots;
}
} // namespace

TEST_CASE("registry::Limiter (adaptive) halves a window on 429/503 from what was in flight, once per round") {
  registry::Limiter l(0, 0, nullptr, true, 16);
  CHECK(l.window(Work::check) == 16); // starts wide open: a registry that never complains is never slowed
  auto slots = take(l, 6);
  slots[0].status(429);
  slots[0] = registry::Limiter::Slot(); // released: the window learns it
  CHECK(l.window(Work::check) == 3);  // 6 in flight, halved
  CHECK(l.decreases() == 1);
  slots[1].status(503); // sent before that decrease: the same overload, no second halving
  slots[1] = registry::Limiter::Slot();
  CHECK(l.window(Work::check) == 3);
  slots.clear(); // the others end without a word (not sent, cancelled)
  CHECK(l.window(Work::check) == 3);
  CHECK(l.window(Work::transfer) == 16); // checks and transfers are separate

  auto more = take(l, 3);
  CHECK_FALSE(l.try_acquire(Work::check)); // the window is full
  CHECK(l.try_acquire(Work::transfer));    // transfers are not held back by it
  more[0].outcome(Outcome::congested);     // a timeout, sent after the decrease: counts
  more.clear();
  CHECK(l.window(Work::check) == 1);
  auto one = take(l, 1);
  one[0].status(429);
  one.clear();
  CHECK(l.window(Work::check) == 1); // never below one
}

TEST_CASE("registry::Limiter (adaptive) widens a full window by one per window of good answers, to its ceiling") {
  registry::Limiter l(4, 0, nullptr, true, 256); // the user's maxConcurrency is the ceiling
  CHECK(l.window(Work::check) == 4);
  {
    auto s = take(l, 2);
    s[0].status(429);
  }
  REQUIRE(l.window(Work::check) == 1);
  int rounds = 0;
  for (; l.window(Work::check) < 4 && rounds < 100; ++rounds) {
    auto s = take(l, l.window(Work::check)); // full
    for (auto& slot : s)
      slot.status(200);
  }
  CHECK(l.window(Work::check) == 4);
  CHECK(rounds <= 6); // about one round per step: 1 -> 2 -> 3 -> 4
  for (int i = 0; i < 50; ++i) {
    auto s = take(l, 4);
    for (auto& slot : s)
      slot.status(200);
  }
  CHECK(l.window(Work::check) == 4); // never above the user's cap
  {
    // Good answers while the window is not full say nothing about more: it does not grow.
    registry::Limiter open(0, 0, nullptr, true, 8);
    auto s = take(open, 2);
    s[0].status(429);
    s.clear();
    REQUIRE(open.window(Work::check) == 1);
    registry::Limiter::Slot a = *open.try_acquire(Work::check);
    a.status(404); // an answer all the same: the registry is not overloaded
    a = registry::Limiter::Slot();
    CHECK(open.window(Work::check) == 2);
  }
}

TEST_CASE("registry::Limiter (adaptive) holds threads to the window, and a fixed limiter does not adapt") {
  registry::Limiter l(0, 0, nullptr, true, 64);
  {
    auto s = take(l, 4);
    s[0].status(429);
  }
  REQUIRE(l.window(Work::check) == 2);
  std::atomic<int> in_flight{0}, most{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&] {
      auto slot = l.acquire(Work::check);
      REQUIRE(slot);
      int now = ++in_flight;
      for (int seen = most.load(); now > seen && !most.compare_exchange_weak(seen, now);) {
      }
      std::this_thread::sleep_for(10ms);
      --in_flight;
      // no outcome: the window stays as it is
    });
  for (auto& t : threads)
    t.join();
  CHECK(most.load() == 2);

  registry::Limiter fixed(16, 0, nullptr, false);
  {
    auto s = take(fixed, 8);
    for (auto& slot : s)
      slot.status(429);
  }
  CHECK(fixed.decreases() == 0);
  CHECK(fixed.window(Work::check) == 16);
  auto all = take(fixed, 16);
  CHECK_FALSE(fixed.try_acquire(Work::check)); // the user's cap holds
}

TEST_CASE("registry::Limiter (adaptive) takes a HEAD far slower than the fastest for overload; not a transfer or a PUT") {
  registry::Limiter l(0, 0, nullptr, true, 8);
  {
    auto fast = take(l, 1);
    fast[0].timed();
    fast[0].status(200); // the fastest HEAD so far: about nothing
  }
  {
    auto slow = take(l, 4, Work::transfer);
    std::this_thread::sleep_for(1100ms);
    for (auto& s : slow)
      s.status(200);
  }
  CHECK(l.window(Work::transfer) == 8); // a big blob takes long: no sign of overload
  auto slow = take(l, 4);
  std::this_thread::sleep_for(1100ms); // more than 8 times the fastest, and a second more
  slow[1].status(201);                 // not a HEAD (a manifest PUT): its time says nothing
  slow[1] = registry::Limiter::Slot();
  CHECK(l.window(Work::check) == 8);
  slow[0].timed();
  slow[0].status(200); // three in flight when it ended: 1.5
  slow.clear();
  CHECK(l.window(Work::check) == 1);
  CHECK(l.decreases() == 1);
}
