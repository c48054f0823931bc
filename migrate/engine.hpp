#pragma once
// The migration engine: image tasks -> bytes on the wire. Its pieces, one file each:
//
//   stores.hpp         where images live (Registry, Layout), their limiters and tag listings
//   scheduler.hpp      every thread of the engine: named lanes, one place
//   head_prefetch.hpp  pass 1: the HEADs that decide whether images need anything, many at once
//   copy_image.hpp     one image: its manifest tree, its blobs, its push, a dry run's plan
//   blobs.hpp          one blob: single-flight, mount, streamed and verified copy
//   referrers.hpp      signatures, SBOMs and attestations that travel with an image
//   report.hpp         results as --report, --write-failed and the summary line
//
// The engine reports each image's end through a ResultSink; the words are cmd's.

#include "http/client.hpp"
#include "migrate/config.hpp"
#include "migrate/report.hpp"
#include "migrate/results.hpp"
#include "migrate/rules.hpp"
#include "registry/store.hpp"
#include "util/cancel.hpp"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace migrate {

class TagDigests;
class BlobLocations;

/// What the engine does: plain values, defaulted here and only here (cmd takes its flags' defaults
/// from a default-constructed EngineOptions), checked by validate().
struct EngineOptions {
  int workers = 7;       ///< image tasks at once, and blob transfers at once (see scheduler.hpp)
  int retries = 3;       ///< extra passes over the tasks that failed for a transient reason
  int attempts = 3;      ///< tries of one request/blob inside a task for transient errors
  std::chrono::milliseconds backoff{500}; ///< first retry delay inside a task, doubled each time
  bool dry_run = false; ///< HEAD only: report what would move, write nothing anywhere
  std::vector<std::string> platforms; ///< copy only these platforms of multi-arch images ("os/arch[/variant]")
  bool filter_index = false;          ///< allow writing a filtered index (a new digest) for --platforms
  bool referrers = true; ///< copy signatures, SBOMs and attestations that refer to each copied image
  bool no_overwrite = false; ///< leave a destination tag that holds another image as it is (KEPT)
  bool force = false; ///< go through every blob and manifest even when the destination has the source's
                      ///< digest: what is missing there is copied again (a damaged destination)

  /// Why these options cannot run ("" when they can): the flag and the allowed range.
  std::string validate() const;
};

/// What a run uses and does not own: never in EngineOptions.
struct EngineContext {
  const util::CancelToken* cancel = nullptr; ///< stopped: no new work; aborted: transfers cut (http)
  /// The digests source tags had in earlier runs: a task with one sends both HEADs at once, each
  /// conditional on it; the digests this run sees go there. Null: none.
  TagDigests* tag_digests = nullptr;
  /// Where earlier runs saw blobs at destination registries: a blob absent from its repository is
  /// mounted from one of those instead of copied; where this run sees them goes there. Null: none.
  BlobLocations* blob_locations = nullptr;
  ResultSink on_result; ///< each image's and referrer's end, for cmd to word (may be empty)
  /// Each task's final result, once (may be empty). When set, the run lets go of the tasks that
  /// ended well: its memory holds what may run again, not the catalogue, and Summary::results
  /// holds only the failed tasks' results.
  FinalSink on_final;
  EnvLookup env;        ///< the environment (Docker's config.json, page size); empty: none (cmd/ passes the process's)
  std::shared_ptr<spdlog::logger> log;
  /// Makes each store instead of a Registry or Layout: for tests (stores in memory). Empty: the real ones.
  std::function<std::unique_ptr<registry::ImageStore>(const registry::Reference&)> make_store;
};

/// Image tasks handed to a run while the rules are still being expanded (tag lists take round
/// trips): the run starts on the first tasks instead of waiting for the last list. Thread-safe.
class TaskFeed {
public:
  /// `limit` > 0: push() waits while that many tasks wait to be taken (the rules are then expanded
  /// only so far ahead of the copy, and a catalogue's tasks are not all held at once). 0: no limit.
  explicit TaskFeed(std::size_t limit = 0) : m_limit(limit) {}
  void push(ImageTask task);
  /// No limit from now on (the producer runs before the consumer starts).
  void unlimit();
  /// No more tasks: pop() returns nullopt once the queue is empty; a later push() drops its task.
  void close();
  /// The next task, waiting for one; nullopt after close() and the last task.
  std::optional<ImageTask> pop();
  /// The next task if one is waiting, without waiting.
  std::optional<ImageTask> try_pop();

private:
  std::optional<ImageTask> front_locked(); ///< the first task taken off the queue; m_mutex held
  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::deque<ImageTask> m_queue;
  std::size_t m_limit;
  bool m_closed = false;
};

class Engine {
public:
  Engine(http::Client& client, AuthConfig auth, EngineOptions options, EngineContext context);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  /// Lists tags through the engine's registries, with the same credentials and retries.
  TagLister tag_lister();
  /// Lists registry catalogs through the engine's registries (whole-namespace rules).
  CatalogLister catalog_lister();
  /// Reads when tags' images were created (their config's "created"), on the lookups lane.
  CreatedLookup created_lookup();

  /// expand_rules with this engine's listers, on its scheduler's lookups lane.
  Expansion expand(const std::vector<Rule>& rules, const Defaults& defaults,
                   const std::function<void(const ImageTask&)>& on_task = {});

  /// Sets up the store of every reference (credentials, Docker credential helpers): a broken
  /// configuration throws ConfigError here, before anything is copied.
  void prepare(const std::vector<registry::Reference>& refs);

  /// Copies every task of the feed as it arrives (their stores set up by prepare() first); failed
  /// tasks are run again after the first pass, up to `retries` times. Returns after feed.close()
  /// and the last task's last pass. Results are in the order the tasks arrived (see on_final).
  Summary run(TaskFeed& feed);

  /// Runs `expand` (which pushes tasks into the feed, then closes it) on the scheduler's rules lane
  /// while run() copies what it pushes. What `expand` throws is rethrown after the run.
  Summary run_while(TaskFeed& feed, const std::function<void()>& expand);

  /// HEADs source and destination of every task (no GET of blobs, nothing written). `deep`: for
  /// an image the destination has, also reads its manifests there and HEADs every blob they name.
  std::vector<VerifyResult> verify(const std::vector<ImageTask>& tasks, bool deep = false);

  /// Counters that run() updates; read them from another thread for progress lines.
  const Progress& progress() const;

private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

/// A run straight from rules: the stores of every rule are set up first (a broken credential helper
/// throws before anything is copied); the rules are then expanded on the rules lane (tag lists)
/// while the engine copies the tasks of the rules already expanded. `expanded` is called with the
/// complete expansion (its count and errors: the tasks went to the engine), from the expanding
/// thread, before it ends the feed; `expansion` holds it after the return. `on_task` sees each task
/// before the engine does. The rules are expanded at most about a thousand tasks ahead of the copy.
/// What the expansion throws is rethrown after the run.
Summary run_rules(Engine& engine, const std::vector<Rule>& rules, const Defaults& defaults, Expansion& expansion,
                  const std::function<void(Expansion&)>& expanded = {},
                  const std::function<void(const ImageTask&)>& on_task = {});

} // namespace migrate
