#pragma once
// The digest each source tag had when a run last saw it, kept in a file between runs. A re-sync
// sends both of an image's HEADs at once, each naming that digest in If-None-Match: a registry
// whose tag is still there answers 304 without reading the manifest. Only a hint: a skip still
// needs both registries to confirm the digest, so a stale, foreign or damaged file costs a 200
// instead of a 304, never a wrong skip. Nothing else is kept (not the media type: decisions rest
// on what registries answer). Thread-safe.

#include "migrate/hint_file.hpp"
#include "util/env.hpp"

#include <filesystem>
#include <optional>
#include <string>

namespace migrate {

class TagDigests {
public:
  /// $XDG_CACHE_HOME/image-migrator/tag-digests (default ~/.cache/...); empty without either
  /// variable.
  static std::filesystem::path default_path(const util::EnvLookup& env);

  /// Reads `path`. A missing file is an empty cache; lines that do not parse are dropped (a cache
  /// is never a reason to fail a run).
  explicit TagDigests(std::filesystem::path path);

  const std::filesystem::path& path() const { return m_file.path(); }

  /// The digest `reference` ("registry/repository:tag") was last seen at.
  std::optional<std::string> find(const std::string& reference) { return m_file.find(reference); }
  /// `reference` is at `digest` now.
  void remember(const std::string& reference, const std::string& digest) { m_file.remember(reference, digest); }

  /// Writes the file (HintFile::save): what other runs saved is kept, except for the tags this
  /// run saw; entries no run has used for more than 30 days are dropped. The reason when it
  /// cannot be written.
  std::optional<std::string> save() { return m_file.save(); }

  static constexpr long keep_days = HintFile::keep_days;
  static constexpr std::size_t max_entries = 1'000'000;
  static constexpr const char* header = "# image-migrator tag digests v2: reference digest day";

private:
  HintFile m_file;
};

} // namespace migrate
