#pragma once
// What the engine copies from and to: a registry (registry/client.hpp) or a local OCI image layout
// (registry/layout.hpp). One interface, so rules, retries, referrers and reports are the same for both.

#include "http/client.hpp"
#include "registry/manifest.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace registry {

/// What a HEAD on a manifest tells.
struct ManifestHead {
  std::string digest;
  std::string media_type;
  std::int64_t size = 0;
};

/// A manifest that names another as its `subject` (a signature, SBOM or attestation), as listed by the
/// referrers API.
struct Referrer {
  std::string digest;
  std::string media_type;
  std::string artifact_type;
  std::string descriptor; ///< the descriptor's JSON as served (kept whole for fallback indexes)
};

/// Outcome of copying one blob.
enum class BlobOutcome { copied, existed, mounted, skipped_foreign };

/// Sees the size of every chunk of a blob as it passes (progress reports).
using ByteCounter = std::function<void(std::size_t)>;

/// A place images live. `repository` names one repository of a registry; a layout holds one, and
/// ignores it. Implementations are thread-safe.
class ImageStore {
public:
  virtual ~ImageStore() = default;

  /// For messages and keys: "registry.example.com", "oci:/srv/export".
  virtual const std::string& host() const = 0;

  /// Blob downloads from this store that broke and were resumed where they stopped, so far.
  virtual std::uint64_t resumed_downloads() const { return 0; }

  virtual Result<std::vector<std::string>> list_tags(const std::string& repository) = 0;

  /// Fetches a manifest by tag or digest; its digest is computed from the bytes and checked.
  virtual Result<Manifest> get_manifest(const std::string& repository, const std::string& reference) = 0;

  /// nullopt when the manifest does not exist.
  virtual Result<std::optional<ManifestHead>> head_manifest(const std::string& repository,
                                                            const std::string& reference) = 0;

  /// Stores manifest bytes under a tag or digest. Everything it references must already be there.
  virtual http::Status put_manifest(const std::string& repository, const std::string& reference,
                                    const Manifest& manifest) = 0;

  virtual Result<bool> blob_exists(const std::string& repository, const std::string& digest) = 0;

  /// Makes a blob of another repository of the same store present here without moving its bytes;
  /// false when the store cannot (then the bytes are copied).
  virtual Result<bool> mount_blob(const std::string& repository, const std::string& digest, const std::string& from) {
    (void)repository, (void)digest, (void)from;
    return false;
  }

  /// Streams a blob from `source` into this store, verifying its digest before it is committed.
  virtual Result<std::uint64_t> copy_blob_from(ImageStore& source, const std::string& source_repository,
                                               const std::string& repository, const Descriptor& blob,
                                               const ByteCounter& on_bytes = {}) = 0;

  /// Streams a blob's bytes, as stored, into `sink` (not verified: the receiver hashes them).
  virtual Result<std::uint64_t> read_blob(const std::string& repository, const Descriptor& blob,
                                          const http::ChunkObserver& sink) = 0;

  /// The path of a blob's file when the store keeps blobs as local files (layouts), else nullopt.
  virtual std::optional<std::string> blob_file(const std::string& digest) const {
    (void)digest;
    return std::nullopt;
  }

  /// The referrers of a digest; nullopt when the store has no referrers API (then the
  /// "sha256-<hex>" tag stands in for it).
  virtual Result<std::optional<std::vector<Referrer>>> list_referrers(const std::string& repository,
                                                                      const std::string& digest) {
    (void)repository, (void)digest;
    return std::optional<std::vector<Referrer>>();
  }

  /// True when list_referrers is known to answer "no referrers API" without asking anyone.
  virtual bool referrers_api_absent() const { return true; }

  /// The repositories below namespace `ns` (whole-namespace rules), or why they cannot be listed.
  virtual Result<std::vector<std::string>> list_repositories(const std::string& ns) {
    (void)ns;
    return http::make_error(http::ErrorKind::unsupported, host() + " has no catalog of repositories");
  }

  /// Whether requests need a token fetched first (known after the first 401).
  virtual bool wants_tokens() const { return false; }
  /// Fetches the pull token of `repository` now, unless one is in hand or being fetched; false when
  /// there is none after all. Lets many token round trips overlap before the requests need them.
  virtual bool fetch_pull_token(const std::string& repository) {
    (void)repository;
    return false;
  }
};

} // namespace registry
