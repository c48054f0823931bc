#pragma once
// What refers to an image (signatures, SBOMs, attestations) travels with it: from the referrers API
// when the source has it, else from the tags that stand in for it ("sha256-<hex>" index, cosign's
// "sha256-<hex>.sig/.att/.sbom"). Each is copied like an image, by digest or under the same tag; a
// destination without the API gets its "sha256-<hex>" index updated. A failure fails the image.

#include "migrate/run_context.hpp"

#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace migrate {

class Referrers {
public:
  /// Copies one referrer like an image (its own referrers included, `depth` deeper).
  using CopyFn = std::function<ImageResult(const ImageTask& task, int depth)>;
  Referrers(RunContext& run, CopyFn copy) : m_run(run), m_copy(std::move(copy)) {}

  /// Copies what refers to r's digest (r copied, at `depth`); on failure r fails with the reason.
  void copy(ImageResult& r, int depth);

  /// Whether nothing can refer to `digest` (media type `media_type`, "" when unknown) of the task's
  /// source, known without any request: the source has no referrers API and its tags, already
  /// listed, have no "sha256-<hex>" tag for it (nor, for an index, for its images).
  bool none_known_without_asking(const ImageTask& task, const std::string& digest, const std::string& media_type);

private:
  http::Status ensure_referrers_tag(registry::ImageStore& dst, const std::string& dst_key, const std::string& repo,
                                    const std::string& subject, const std::vector<registry::Referrer>& referrers);

  /// Referrers of one image, whatever its source lists: more is refused.
  static constexpr std::size_t max_referrers = 1000;

  RunContext& m_run;
  CopyFn m_copy;
  std::mutex m_mutex;
  std::map<std::string, std::unique_ptr<std::mutex>> m_tag_writers; ///< referrers tags being rewritten
  std::map<std::string, std::shared_future<bool>> m_done; ///< destination + referrer -> copied fine
};

/// The same repositories as `task`, another manifest: under `tag`, or by `digest` when tag is "".
ImageTask retarget(const ImageTask& task, const std::string& tag, const std::string& digest);

} // namespace migrate
