#pragma once
// What the pieces of a run share: its options, stores, scheduler, retries, blob copier, counters,
// the tag-digest cache and where results go. Made once by Engine::Impl, passed by reference.

#include "migrate/blobs.hpp"
#include "migrate/engine.hpp"
#include "migrate/results.hpp"
#include "migrate/retry.hpp"
#include "migrate/scheduler.hpp"
#include "migrate/stores.hpp"

#include <chrono>
#include <memory>
#include <optional>

namespace spdlog {
class logger;
}

namespace migrate {

class TagDigests;

/// What an image copy needs from its run.
struct RunContext {
  const EngineOptions& options;
  Stores& stores;
  Scheduler& scheduler;
  const Retrier& retry;
  BlobCopier& blobs;
  Progress& progress;
  TagDigests* tag_digests = nullptr; ///< source tags' digests, kept between runs (null: none)
  ResultSink on_result;              ///< how each image and referrer ended (may be empty)
  std::shared_ptr<spdlog::logger> log;
  bool stopped() const { return retry.stopped(); }
};

/// Answers to the HEADs of one task that were sent ahead, in a batch: nullopt = not asked or not
/// settled (the copy then asks itself, with retries); inside, nullopt = absent.
struct KnownHeads {
  std::optional<std::optional<registry::ManifestHead>> source, destination;
  std::optional<http::Error> source_failed, destination_failed; ///< unsettled: the first try's error (a try counts)
  std::chrono::steady_clock::time_point answered{};             ///< when the last answer came
  /// Answers older than this when the image's turn comes are asked again: a tag may have moved.
  static constexpr std::chrono::seconds fresh{5};
};

} // namespace migrate
