#pragma once
// A local OCI image layout (image-spec: oci-layout, index.json, blobs/<alg>/<hex>) as a source or a
// destination: the disk side of an air-gapped, two-hop migration. Tags are the
// "org.opencontainers.image.ref.name" annotations of index.json. One layout holds one repository,
// so the `repository` arguments of ImageStore are ignored. Blobs and index.json are written to a
// temporary file, synced and renamed: a crash leaves the old state or the new one, never half a file.

#include "registry/store.hpp"

#include <nlohmann/json_fwd.hpp>

#include <mutex>
#include <string>

namespace registry {

/// The annotation that names a manifest of index.json.
inline constexpr const char* ref_name_annotation = "org.opencontainers.image.ref.name";

class Layout final : public ImageStore {
public:
  /// `path` is the layout's directory. A source must exist; a destination is created on the first write.
  explicit Layout(std::string path);

  const std::string& host() const override { return m_name; }
  const std::string& path() const { return m_path; }

  Result<std::vector<std::string>> list_tags(const std::string& repository) override;
  Result<Manifest> get_manifest(const std::string& repository, const std::string& reference) override;
  Result<std::optional<ManifestHead>> head_manifest(const std::string& repository, const std::string& reference) override;
  http::Status put_manifest(const std::string& repository, const std::string& reference, const Manifest& manifest) override;
  Result<bool> blob_exists(const std::string& repository, const std::string& digest) override;
  Result<std::uint64_t> copy_blob_from(ImageStore& source, const std::string& source_repository,
                                       const std::string& repository, const Descriptor& blob,
                                       const ByteCounter& on_bytes = {}) override;
  Result<std::uint64_t> read_blob(const std::string& repository, const Descriptor& blob,
                                  const http::ChunkObserver& sink) override;
  std::optional<std::string> blob_file(const std::string& digest) const override;

private:
  Result<std::string> blob_path(const std::string& digest) const;
  Result<nlohmann::json> read_index() const;
  http::Status create();
  /// Writes `bytes` to `path` through a synced temporary file and a rename.
  http::Status write_file(const std::string& path, std::string_view bytes) const;
  /// The index.json descriptor a tag or digest names; nullopt when there is none.
  Result<std::optional<Descriptor>> resolve(const std::string& reference);

  std::string m_path;
  std::string m_name; ///< "oci:<path>"
  std::mutex m_index_mutex;
};

} // namespace registry
