#include "migrate/tag_digests.hpp"

#include "migrate/user_dirs.hpp"
#include "registry/digest.hpp"

namespace migrate {

namespace fs = std::filesystem;

fs::path TagDigests::default_path(const util::EnvLookup& env) {
  fs::path dir = user_dir(env, "XDG_CACHE_HOME", ".cache");
  return dir.empty() ? dir : dir / "tag-digests";
}

// The digest goes into If-None-Match: only a well-formed one is kept or used.
TagDigests::TagDigests(fs::path path)
    : m_file(std::move(path), header,
             [](const std::string&, const std::string& digest) { return registry::valid_digest(digest); },
             max_entries) {}

} // namespace migrate
