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
