#include "migrate/tag_digests.hpp"

#include "migrate/user_dirs.hpp"
#include "registry/digest.hpp"
#include "util/file.hpp"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace migrate {

namespace {

namespace fs = std::filesystem;

constexpr std::string_view header = "# image-migrator tag digests v2: reference digest day";

long today() { return static_cast<long>(std::time(nullptr) / 86400); }

bool plain_reference(const std::string& s) {
  if (s.empty() || s.size() > 4096 || s[0] == '#')
    return false;
  for (unsigned char c : s)
    if (c <= ' ' || c == 0x7f)
      return false;
  return true;
}

} // namespace

fs::path TagDigests::default_path(const util::EnvLookup& env) {
  fs::path dir = user_dir(env, "XDG_CACHE_HOME", ".cache");
  return dir.empty() ? dir : dir / "tag-digests";
}

TagDigests::TagDigests(fs::path path) : m_path(std::move(path)), m_entries(read(m_path)) {}

std::map<std::string, TagDigests::Stored> TagDigests::read(const fs::path& path) {
  std::map<std::string, Stored> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#')
      continue;
    std::istringstream fields(line);
    std::string reference, digest, day, rest;
    if (!(fields >> reference >> digest >> day) || (fields >> rest))
      continue;
    char* end = nullptr;
    errno = 0;
    long d = std::strtol(day.c_str(), &end, 10);
    // The digest goes into If-None-Match: only a well-formed one is used.
    if (!plain_reference(reference) || !registry::valid_digest(digest) || errno || *end || d < 0)
      continue;
    out[reference] = Stored{digest, d, false};
  }
  return out;
}

std::optional<std::string> TagDigests::find(const std::string& reference) {
  std::lock_guard lock(m_mutex);
  auto it = m_entries.find(reference);
  if (it == m_entries.end())
    return std::nullopt;
  it->second.seen = true;
  return it->second.digest;
}

void TagDigests::remember(const std::string& reference, const std::string& digest) {
  if (!plain_reference(reference) || !registry::valid_digest(digest))
    return;
  std::lock_guard lock(m_mutex);
  Stored& s = m_entries[reference];
  s.digest = digest;
  s.seen = true;
}

std::optional<std::string> TagDigests::save() {
  auto fail = [&](const std::string& what, int error) {
    return m_path.string() + ": " + what + ": " + std::strerror(error);
  };
  std::lock_guard lock(m_mutex);
  const fs::path dir = m_path.has_parent_path() ? m_path.parent_path() : fs::path(".");
  if (int error = util::make_private_directories(dir.string()))
    return fail("cannot create its directory", error);
  // Runs that save at the same time take turns (flock on "<file>.lock"), so that each merges what
  // the other saved. Without a lock to be had (a read-only directory), the write below says why.
  util::FileLock turn(m_path.string() + ".lock");
  const long now = today();
  auto merged = read(m_path); // another run may have saved since this one read it
  for (const auto& [reference, stored] : m_entries)
    if (stored.seen)
      merged[reference] = Stored{stored.digest, now, false};
  // Unused for too long, or dated after today (a clock set back): forgotten.
  std::erase_if(merged, [&](const auto& kv) { return now - kv.second.day > keep_days || kv.second.day > now; });
  std::string text(header);
  text += '\n';
  for (const auto& [reference, stored] : merged)
    text += reference + ' ' + stored.digest + ' ' + std::to_string(stored.day) + '\n';

  if (auto why = util::write_file_atomically(m_path.string(), text, 0600); !why.empty())
    return why;
  m_entries = std::move(merged);
  return std::nullopt;
}

} // namespace migrate
