#pragma once
// Where blobs were last seen or pushed at destination registries, kept between runs: a new
// repository whose layers already sit in another repository of its registry gets them by a
// cross-repository mount instead of a copy, even when another run put them there. One repository
// per registry and digest (the latest). Only a hint: the registry decides, and a mount it refuses
// (the repository was deleted, the credentials cannot read it) falls back to a copy. Thread-safe.

#include "migrate/hint_file.hpp"
#include "util/env.hpp"

#include <filesystem>
#include <optional>
#include <string>

namespace migrate {

class BlobLocations {
public:
  /// $XDG_CACHE_HOME/image-migrator/blob-locations (default ~/.cache/...); empty without either
  /// variable.
  static std::filesystem::path default_path(const util::EnvLookup& env);

  /// Reads `path`; a missing file is an empty memory, lines that do not parse are dropped.
  explicit BlobLocations(std::filesystem::path path);

  const std::filesystem::path& path() const { return m_file.path(); }

  /// A repository of registry `host` that held blob `digest` when a run last looked.
  std::optional<std::string> find(const std::string& host, const std::string& digest);
  /// Blob `digest` is in `repository` of `host` now.
  void remember(const std::string& host, const std::string& digest, const std::string& repository);
  /// The registry refused to mount it from there: that hint is dropped.
  void forget(const std::string& host, const std::string& digest);

  /// HintFile::save: merged with what other runs saved; unused for 30 days or beyond the newest
  /// max_entries, forgotten.
  std::optional<std::string> save() { return m_file.save(); }

  static constexpr std::size_t max_entries = 200'000;
  static constexpr const char* header = "# image-migrator blob locations v1: registry/digest repository day";

private:
  HintFile m_file;
};

} // namespace migrate
