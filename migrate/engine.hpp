#pragma once
// The migration engine: image tasks -> bytes on the wire. Image workers resolve manifests; one
// bounded blob scheduler moves the blobs of all images concurrently, single-flight per destination
// registry and digest; manifests are pushed only after everything they reference is present.

#include "http/client.hpp"
#include "migrate/config.hpp"
#include "migrate/rules.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
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

struct EngineOptions {
  int workers = 7;       ///< concurrent image tasks, and concurrent blob transfers
  int retries = 3;       ///< extra passes over the tasks that failed
  int attempts = 3;      ///< tries of one request/blob inside a task for transient errors
  std::chrono::milliseconds backoff{500}; ///< first retry delay inside a task, doubled each time
  const std::atomic<bool>* cancel = nullptr;
  bool dry_run = false; ///< HEAD only: report what would move, write nothing anywhere
  std::vector<std::string> platforms; ///< copy only these platforms of multi-arch images ("os/arch[/variant]")
  bool filter_index = false;          ///< allow writing a filtered index (a new digest) for --platforms
  bool referrers = true; ///< copy signatures, SBOMs and attestations that refer to each copied image
  bool no_overwrite = false; ///< leave a destination tag that holds another image as it is (KEPT)
  bool force = false; ///< go through every blob and manifest even when the destination has the source's
                      ///< digest: what is missing there is copied again (a damaged destination)
  /// The digests source tags had in earlier runs: a task with one sends both HEADs at once, each
  /// conditional on it; the digests this run sees go there. Not owned; null: none.
  TagDigests* tag_digests = nullptr;
};

/// Live counters for progress reports, updated while the engine runs.
struct Progress {
  std::atomic<std::size_t> images_total{0};
  std::atomic<std::size_t> images_done{0};
  std::atomic<std::size_t> images_failed{0};
  std::atomic<std::uint64_t> bytes{0}; ///< bytes streamed so far (including retried ones)
};

/// What a HEAD-only comparison of one task found.
struct VerifyResult {
  ImageTask task;
  std::string source_digest;      ///< "" when it could not be read
  std::string destination_digest; ///< "" when absent
  std::string error;
  std::vector<std::string> missing; ///< deep check: what the destination's image refers to but lacks
  std::string filtered_digest;      ///< --platforms: the source index filtered to them, when that is what
                                    ///< the destination holds
  bool same() const {
    return error.empty() && !source_digest.empty() &&
           (source_digest == destination_digest || (!filtered_digest.empty() && filtered_digest == destination_digest));
  }
};

struct ImageResult {
  ImageTask task;
  bool ok = false;
  bool skipped = false; ///< destination already had the source digest
  bool planned = false; ///< dry run: counted, not copied
  std::string digest;
  std::string media_type; ///< of the source manifest, when known
  std::uint64_t bytes = 0;
  int blobs_copied = 0;
  int blobs_existed = 0;
  int blobs_mounted = 0;
  int blobs_foreign = 0;
  int referrers = 0;     ///< referrer manifests and cosign tags handled with it (copied or present)
  bool filtered = false; ///< written as a filtered index (--filter-index): a new digest
  std::string replaced;  ///< the other image's digest the destination tag held before, "" if none
  bool kept = false;     ///< --no-overwrite: that other image was left in place, nothing copied
  double seconds = 0;
  std::string error;
  bool permanent = false; ///< failed for a reason another pass cannot fix (not found, auth, bad input)
};

struct Summary {
  std::size_t images = 0;          ///< image tasks generated
  std::size_t failed = 0;          ///< image tasks that still failed after all passes
  std::size_t generate_failed = 0; ///< rules that could not be turned into tasks
  std::uint64_t bytes = 0;
  std::uint64_t resumed = 0; ///< blob downloads that broke and went on from where they stopped
  double seconds = 0;
  std::vector<ImageResult> results;
};

/// Image tasks handed to a run while the rules are still being expanded (tag lists take round
/// trips): the run starts on the first tasks instead of waiting for the last list. Thread-safe.
class TaskFeed {
public:
  void push(ImageTask task);
  /// No more tasks: pop() returns nullopt once the queue is empty.
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
  bool m_closed = false;
};

class Engine {
public:
  Engine(http::Client& client, AuthConfig auth, EngineOptions options, std::shared_ptr<spdlog::logger> log);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  /// Lists tags through the engine's registries, with the same credentials and retries.
  TagLister tag_lister();
  /// Lists registry catalogs through the engine's registries (whole-namespace rules).
  CatalogLister catalog_lister();
  /// Reads when tags' images were created (their config's "created"), 8 tags at a time.
  CreatedLookup created_lookup();

  /// Sets up the store of every reference (credentials, Docker credential helpers): a broken
  /// configuration throws ConfigError here, before anything is copied.
  void prepare(const std::vector<registry::Reference>& refs);

  /// Copies every task of the feed as it arrives (their stores set up by prepare() first); failed
  /// tasks are run again after the first pass, up to `retries` times. Returns after feed.close()
  /// and the last task's last pass. Results are in the order the tasks arrived.
  Summary run(TaskFeed& feed);

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
/// throws before anything is copied); the rules are then expanded in the background (tag lists)
/// while the engine copies the tasks of the rules already expanded. `expanded` is called with the
/// complete expansion, from the expanding thread, before it ends the feed; `expansion` holds it
/// after the return. What the expansion throws is rethrown after the run.
Summary run_rules(Engine& engine, const std::vector<Rule>& rules, const Defaults& defaults, Expansion& expansion,
                  const std::function<void(Expansion&)>& expanded = {});

/// The images that failed (or were cancelled) as an images file, source -> destination (an array for
/// one source with several), to run again just them (--write-failed); with the rules whose listing
/// failed for a transient reason or was interrupted, as they were written.
nlohmann::json failed_images_json(const Summary& summary, const std::vector<RuleError>& rule_errors);

/// The documented last line: "Images(N) migration finished, F images tasks failed, G tasks generate failed".
std::string summary_line(const Summary& summary);

/// The per-image report (--report): source, destination, digest, status, bytes, seconds, error.
nlohmann::json report_json(const Summary& summary);

} // namespace migrate
