#pragma once
// One image: the two HEADs that decide whether anything is needed, the manifest tree below it (an
// index's children before the index), its blobs (BlobCopier, on the blobs lane), the manifests
// pushed after everything they reference, then what refers to it (Referrers). Also what a dry run
// plans, what verify --deep checks, and when a tag's image was created (for "latest N").

#include "migrate/referrers.hpp"
#include "migrate/run_context.hpp"

#include <optional>
#include <set>
#include <string>
#include <vector>

namespace migrate {

class ImageCopier {
public:
  explicit ImageCopier(RunContext& run);

  /// Copies one task of the run and what refers to it; anything thrown fails this image only (what
  /// a remote party sends must not end the run before its report is written).
  ImageResult copy(const ImageTask& task, const KnownHeads& known = {});

  /// Whether the answers in `known` finish `task` with no further request: both ends hold the same
  /// digest, and nothing can refer to it. Never waits.
  bool settled_by(const ImageTask& task, const KnownHeads& known);

  /// What the image `digest` in `repo` refers to and `store` lacks: blob digests, or the error of a
  /// child manifest it cannot read. Empty when the image is whole there.
  http::Result<std::vector<std::string>> missing_parts(registry::ImageStore& store, const std::string& repo,
                                                       const std::string& digest);

  /// When the image of a tag was created: its config's "created" (for an index, that of its
  /// linux/amd64 image, else of its first image). nullopt when it has none (artifacts).
  http::Result<std::optional<double>> created_of(registry::ImageStore& store, const std::string& repo,
                                                 const std::string& tag);

private:
  /// A manifest to push after its blobs, children before parents.
  struct PendingManifest {
    registry::Manifest manifest;
    std::string reference;
  };
  /// What one image's manifest tree may hold, whatever its source says: a child listed twice is
  /// fetched once, and past these bounds the image fails instead of the run growing without end.
  struct TreeBudget {
    static constexpr int max_depth = 4;
    static constexpr std::size_t max_manifests = 1000;
    static constexpr std::size_t max_bytes = 64u << 20; ///< manifest bytes held for one image
    std::set<std::string> seen;                         ///< child digests already in the tree
    std::size_t manifests = 0;
    std::size_t bytes = 0;
  };

  /// Copies one image, then what refers to it (up to three levels: a signature of an SBOM of an image).
  ImageResult copy_image(const ImageTask& task, int depth, const KnownHeads& known = {});
  /// `top`: a task of the run, not a referrer; its source tag's digest is kept (TagDigests).
  ImageResult copy_one(const ImageTask& task, const KnownHeads& known, bool top);
  /// Fetches the manifest tree below `manifest`, collecting blobs and child manifests.
  http::Status collect(registry::ImageStore& src, const std::string& src_repo, const registry::Manifest& manifest,
                       std::vector<registry::Descriptor>& blobs, std::vector<PendingManifest>& children, int depth,
                       TreeBudget& budget);
  /// Every distinct blob of an image made present: looked for on the lookups lane (16 ahead), those
  /// missing mounted or copied on the blobs lane (32 ahead); their outcomes counted into r.
  http::Status transfer_blobs(ImageResult& r, registry::ImageStore& src, const std::string& src_repo,
                              const Stores::Entry& dst, const std::string& dst_repo,
                              const std::vector<registry::Descriptor>& blobs);
  /// Dry run: which blobs are missing at the destination (HEAD only), and how many bytes would move.
  http::Status plan_blobs(ImageResult& r, const Stores::Entry& dst, const std::string& dst_repo,
                          const std::vector<registry::Descriptor>& blobs);
  http::Result<std::optional<double>> created_of_unguarded(registry::ImageStore& store, const std::string& repo,
                                                           const std::string& tag);

  RunContext& m_run;
  Referrers m_referrers;
};

} // namespace migrate
