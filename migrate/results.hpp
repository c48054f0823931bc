#pragma once
// What a run produces, as values: per image (ImageResult), per run (Summary), per comparison
// (VerifyResult), and the live counters progress lines are made of. The engine fills them; report.hpp
// turns them into the report files; cmd words them for people.

#include "http/result.hpp"
#include "migrate/rules.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace migrate {

/// Live counters for progress reports, updated while the engine runs.
struct Progress {
  std::atomic<std::size_t> images_total{0};
  std::atomic<std::size_t> images_done{0};
  std::atomic<std::size_t> images_failed{0};
  std::atomic<std::uint64_t> bytes{0};         ///< bytes streamed so far (including retried ones)
  std::atomic<std::uint64_t> bytes_planned{0}; ///< bytes of the blobs that images being copied send
  std::atomic<std::uint64_t> bytes_settled{0}; ///< of those, the bytes of blobs done (or found present)
  std::atomic<std::size_t> images_planned{0};  ///< images whose blobs are in bytes_planned
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
  std::optional<http::ErrorKind> error_kind; ///< what kind of failure, when it failed
  bool permanent = false; ///< failed for a reason another pass cannot fix (not found, auth, bad input)
  int pass = 0;           ///< the pass that produced this result (0 = the first)
};

struct Summary {
  std::size_t images = 0;          ///< image tasks generated
  std::size_t failed = 0;          ///< image tasks that still failed after all passes
  std::size_t generate_failed = 0; ///< rules that could not be turned into tasks
  std::uint64_t bytes = 0;
  std::uint64_t resumed = 0; ///< blob downloads that broke and went on from where they stopped
  double seconds = 0;
  /// Every task's result in the order the tasks arrived; with an EngineContext::on_final sink, only
  /// the failed ones (the others went to the sink and were let go).
  std::vector<ImageResult> results;
};

/// How an image ended, for whoever words it (cmd logs a line per image). `referrer`: a signature,
/// SBOM or attestation copied with an image, not a task of its own. `last`: no later pass will try
/// it again. Called from the engine's threads, one call at a time.
using ResultSink = std::function<void(const ImageResult& result, bool referrer, bool last)>;

/// Each task's final result, once per task, in the order tasks end (a report written as the run
/// goes). Called from the engine's threads, one call at a time.
using FinalSink = std::function<void(const ImageResult& result)>;

} // namespace migrate
