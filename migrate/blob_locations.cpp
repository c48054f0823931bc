#include "migrate/blob_locations.hpp"

#include "migrate/user_dirs.hpp"
#include "registry/digest.hpp"
#include "registry/reference.hpp"

namespace migrate {

namespace fs = std::filesystem;

namespace {

/// "host/digest", the key of a line.
std::string key_of(const std::string& host, const std::string& digest) { return host + "/" + digest; }

/// A line is kept only when every part could be used in a mount request as it is.
bool usable(const std::string& key, const std::string& repository) {
  auto slash = key.find('/');
  return slash != std::string::npos && registry::valid_registry(std::string_view(key).substr(0, slash)) &&
         registry::valid_digest(std::string_view(key).substr(slash + 1)) && registry::valid_repository(repository);
}

} // namespace

fs::path BlobLocations::default_path(const util::EnvLookup& env) {
  fs::path dir = user_dir(env, "XDG_CACHE_HOME", ".cache");
  return dir.empty() ? dir : dir / "blob-locations";
}

BlobLocations::BlobLocations(fs::path path)
    : m_file(std::move(path), header, usable,
             max_entries) {}

std::optional<std::string> BlobLocations::find(const std::string& host, const std::string& digest) {
  return m_file.find(key_of(host, digest));
}

void BlobLocations::remember(const std::string& host, const std::string& digest, const std::string& repository) {
  m_file.remember(key_of(host, digest), repository);
}

void BlobLocations::forget(const std::string& host, const std::string& digest) { m_file.forget(key_of(host, digest)); }

} // namespace migrate
