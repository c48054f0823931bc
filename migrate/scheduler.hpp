#pragma once
// Every thread the engine uses, in one place. Work goes to a named lane; each lane has its own cap
// and starts threads only as work arrives (a re-sync with nothing to copy never starts a blob
// thread); all are joined when the Scheduler goes (no detached threads).
//
//   lane       threads               what runs there
//   images     --workers             one image task each: its manifests, then its push
//   blobs      --workers             one blob mount or copy each (single-flight per registry + digest)
//   lookups    max(16, --workers)    short requests beside the others: a destination HEAD next to
//                                    its source HEAD, the HEADs of an image's blobs at the
//                                    destination (16 ahead per image, before its mount or copy), tag
//                                    listings (32 repositories ahead in rule order), creation times
//                                    for "latest N", pull tokens fetched ahead
//   rules      1                     the expansion of the rules, feeding tasks to the run
//   (images also runs verify's comparisons, one task each)
//
// The HEADs that decide whether images need anything run on the caller's thread of Engine::run
// (registry::HeadBatch: one multi handle, many requests), and each blob transfer drives its download
// and upload from its own lane thread (http::Client::pipe). Cancellation is the run's
// util::CancelToken: work checks it before it starts; the HTTP client cuts transfers when aborted.

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace migrate {

class Scheduler {
public:
  enum class Lane { images, blobs, lookups, rules };

  /// `workers`: the cap of the images and blobs lanes (--workers).
  explicit Scheduler(int workers)
      : m_images(std::max(1, workers)), m_blobs(std::max(1, workers)), m_lookups(std::max(16, workers)), m_rules(1) {}
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  /// Runs `f` on a thread of `lane` (queued while all of them are busy); its result or exception
  /// comes through the future.
  template <class F> auto submit(Lane lane, F f) -> std::future<decltype(f())> { return pool(lane).submit(std::move(f)); }

private:
  /// Up to `threads` threads draining one queue, started as work arrives. Joined on destruction.
  class Pool {
  public:
    explicit Pool(int threads) : m_max(static_cast<std::size_t>(std::max(1, threads))) {}
    ~Pool() {
      {
        std::lock_guard lock(m_mutex);
        m_stop = true;
      }
      m_cv.notify_all();
      for (auto& t : m_threads)
        t.join();
    }
    template <class F> auto submit(F f) -> std::future<decltype(f())> {
      auto task = std::make_shared<std::packaged_task<decltype(f())()>>(std::move(f));
      auto future = task->get_future();
      bool inline_run = false;
      {
        std::lock_guard lock(m_mutex);
        if (m_idle <= m_queue.size() && m_threads.size() < m_max) {
          try {
            m_threads.emplace_back([this] { loop(); });
          } catch (const std::system_error&) {
            // No thread to be had (a pod's pids limit): the threads there are take the job, and
            // with none, the caller runs it itself.
            inline_run = m_threads.empty();
          }
        }
        if (!inline_run)
          m_queue.emplace_back([task] { (*task)(); });
      }
      if (inline_run)
        (*task)();
      else
        m_cv.notify_one();
      return future;
    }

  private:
    void loop() {
      std::unique_lock lock(m_mutex);
      while (true) {
        ++m_idle;
        m_cv.wait(lock, [&] { return m_stop || !m_queue.empty(); });
        --m_idle;
        if (m_queue.empty())
          return;
        auto job = std::move(m_queue.front());
        m_queue.pop_front();
        lock.unlock();
        job();
        lock.lock();
      }
    }
    const std::size_t m_max;
    std::mutex m_mutex;
    std::condition_variable m_cv;
    std::deque<std::function<void()>> m_queue;
    std::vector<std::thread> m_threads;
    std::size_t m_idle = 0; ///< threads waiting for a job
    bool m_stop = false;
  };

  Pool& pool(Lane lane) {
    switch (lane) {
    case Lane::images:
      return m_images;
    case Lane::blobs:
      return m_blobs;
    case Lane::rules:
      return m_rules;
    case Lane::lookups:
      break;
    }
    return m_lookups;
  }

  // Joined in reverse order (rules, lookups, blobs, images); a pool drains its queue before its
  // threads end, and Engine::run has waited for all its work before the Scheduler goes.
  Pool m_images;
  Pool m_blobs;
  Pool m_lookups;
  Pool m_rules;
};

} // namespace migrate
