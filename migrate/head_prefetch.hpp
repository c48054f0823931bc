#pragma once
// Pass 1 of a run. Tasks are taken from the feed as they come; this thread sends the HEADs that
// decide whether each image needs anything (registry::HeadBatch: one libcurl multi handle, many
// requests) and hands each task to a worker of the images lane with the answers.
//
// - One end's HEAD goes first; the other's follows naming the digest it answered in If-None-Match,
//   so a registry whose tag is already at that digest answers 304 without reading the manifest.
//   Every other image asks its source first, the others their destination: each registry answers
//   half of the cheap ones.
// - When an earlier run saw the source tag's digest (TagDigests), both go at once, each naming it.
// - A source pinned by digest is not asked: its destination is, alone (unconditional: a HEAD by
//   digest is never conditional, distribution would answer 304 without looking it up).
// - A task the answers settle (same digest, nothing to look for) finishes on this thread: waking a
//   worker would cost more than the task. The others start in the feed's order (images are copied
//   in the order of the rules), but a task waits at most 1 s behind an earlier one whose answers are
//   slow to come.
// - At most `ahead` tasks are taken and not finished, so a tag is not resolved long before its
//   image is copied (answers older than KnownHeads::fresh are asked again anyway).
// - A HEAD that cannot go in the batch (a layout, a registry with caps, no token in hand) is left
//   to the worker; the first such miss on a registry that wants tokens fetches the pull tokens of
//   all the rules' repositories there, one job per repository on the lookups lane.

#include "migrate/copy_image.hpp"
#include "migrate/task_slots.hpp"
#include "registry/head_batch.hpp"

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <future>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <vector>

namespace migrate {

class TaskFeed;

class HeadPrefetch {
public:
  /// Runs a task with the answers known for it, on a worker or on this thread.
  using RunTask = std::function<void(std::size_t index, const KnownHeads& known)>;

  HeadPrefetch(RunContext& run, ImageCopier& copier, http::Client& client, const std::vector<registry::Reference>& endpoints,
               RunTask run_task);
  ~HeadPrefetch();
  HeadPrefetch(const HeadPrefetch&) = delete;
  HeadPrefetch& operator=(const HeadPrefetch&) = delete;

  /// Takes every task of `feed` into `slots` and returns once the feed is closed and every task
  /// taken has run.
  void run(TaskFeed& feed, TaskSlots& slots);

private:
  struct Waiting {
    int in_flight = 0;       ///< HEADs sent and not answered: 1, or 2 with a digest an earlier run saw
    bool then_other = false; ///< the other end's HEAD goes once the one in flight is answered
    KnownHeads known;        ///< answers so far
  };

  bool take(TaskFeed& feed, bool wait);
  /// Queues the HEAD of one end of task i; false when it cannot go in the batch (the worker asks).
  bool ask(std::size_t i, bool source, const std::string& expected, bool second);
  void on_answer(std::uint64_t id, registry::HeadAnswer answer);
  void answered(std::size_t i, KnownHeads known);
  void start(std::size_t i, KnownHeads known);
  void start_ready();
  void warm_tokens(const registry::Reference& ref);

  RunContext& m_run;
  ImageCopier& m_copier;
  registry::HeadBatch m_batch;
  const std::vector<registry::Reference>& m_endpoints;
  RunTask m_run_task;
  std::size_t m_ahead;

  TaskSlots* m_slots = nullptr;
  std::map<std::size_t, Waiting> m_waiting; ///< by task: those with a HEAD in flight
  std::map<std::size_t, std::optional<KnownHeads>> m_ready; ///< answered; nullopt: finished or started
  std::size_t m_next_ready = 0;
  bool m_feed_done = false;
  std::vector<std::future<void>> m_started;
  std::exception_ptr m_error; ///< the first exception a started task threw
  void keep_error(std::future<void>& f);

  std::mutex m_mutex; ///< m_outstanding, shared with the workers
  std::condition_variable m_cv;
  std::size_t m_outstanding = 0; ///< tasks taken and not finished

  std::mutex m_warm_mutex;
  std::set<std::string> m_warmed;      ///< stores whose tokens were asked for ahead
  std::set<std::string> m_warm_failed; ///< stores whose token server failed a fetch ahead: no more
  bool m_warm_stop = false;            ///< the pass is over: fetches ahead not started are dropped
  std::vector<std::future<void>> m_warming;
};

} // namespace migrate
