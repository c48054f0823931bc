#include "migrate/tag_digests.hpp"

#include "migrate/user_dirs.hpp"
#include "registry/digest.hpp"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

namespace migrate {

namespace {

namespace fs = std::filesystem;

constexpr std::string_view header = "# image-migrator tag digests v1: reference digest media-type day";

long today() { return static_cast<long>(std::time(nullptr) / 86400); }

/// A media type as a registry sends it ("application/vnd.oci.image.manifest.v1+json"): it goes back
/// into decisions, never into a request, but a damaged file must not bring spaces or controls.
bool plain_media_type(const std::string& s) {
  if (s.size() > 255)
    return false;
  for (unsigned char c : s)
    if (!std::isalnum(c) && !std::strchr("!#$&^_.+-/", c))
      return false;
  return true;
}

bool plain_reference(const std::string& s) {
  if (s.empty() || s.size() > 4096)
    return false;
  for (unsigned char c : s)
    if (c <= ' ' || c == 0x7f)
      return false;
  return true;
}

} // namespace

fs::path TagDigests::default_path() {
  fs::path dir = user_dir("XDG_CACHE_HOME", ".cache");
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
    std::string reference, digest, media_type, day, rest;
    if (!(fields >> reference >> digest >> media_type >> day) || (fields >> rest))
      continue;
    if (media_type == "-")
      media_type.clear();
    char* end = nullptr;
    errno = 0;
    long d = std::strtol(day.c_str(), &end, 10);
    // The digest goes into If-None-Match: only a well-formed one is used.
    if (!plain_reference(reference) || !registry::valid_digest(digest) || !plain_media_type(media_type) ||
        errno || *end || d < 0)
      continue;
    out[reference] = Stored{Entry{digest, media_type}, d, false};
  }
  return out;
}

std::optional<TagDigests::Entry> TagDigests::find(const std::string& reference) {
  std::lock_guard lock(m_mutex);
  auto it = m_entries.find(reference);
  if (it == m_entries.end())
    return std::nullopt;
  it->second.seen = true;
  return it->second.entry;
}

void TagDigests::remember(const std::string& reference, const std::string& digest, const std::string& media_type) {
  if (!plain_reference(reference) || !registry::valid_digest(digest))
    return;
  std::lock_guard lock(m_mutex);
  Stored& s = m_entries[reference];
  if (!media_type.empty() && plain_media_type(media_type))
    s.entry.media_type = media_type;
  else if (s.entry.digest != digest)
    s.entry.media_type.clear();
  s.entry.digest = digest;
  s.seen = true;
}

std::optional<std::string> TagDigests::save() {
  auto fail = [&](const std::string& what) { return m_path.string() + ": " + what + ": " + std::strerror(errno); };
  std::lock_guard lock(m_mutex);
  const long now = today();
  auto merged = read(m_path); // another run may have written it since this one read it
  for (const auto& [reference, stored] : m_entries)
    if (stored.seen)
      merged[reference] = Stored{stored.entry, now, false};
  std::erase_if(merged, [&](const auto& kv) { return now - kv.second.day > keep_days; });
  std::string text(header);
  text += '\n';
  for (const auto& [reference, stored] : merged) {
    text += reference + ' ' + stored.entry.digest + ' ' +
            (stored.entry.media_type.empty() ? std::string("-") : stored.entry.media_type) + ' ' +
            std::to_string(stored.day) + '\n';
  }
  std::error_code ec;
  if (m_path.has_parent_path())
    fs::create_directories(m_path.parent_path(), ec);
  if (ec) {
    errno = ec.value();
    return fail("cannot create its directory");
  }
  if (m_path.parent_path().filename() == "image-migrator")
    fs::permissions(m_path.parent_path(), fs::perms::owner_all, ec); // our own directory: ours alone
  const std::string tmp = m_path.string() + ".tmp-" + std::to_string(getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return fail("cannot write");
  errno = 0;
  int error = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) ? 0 : errno ? errno : EIO;
  if (::close(fd) != 0 && !error)
    error = errno;
  if (!error && ::rename(tmp.c_str(), m_path.c_str()) != 0)
    error = errno;
  if (error) {
    ::unlink(tmp.c_str());
    errno = error;
    return fail("cannot write");
  }
  m_entries = std::move(merged);
  return std::nullopt;
}

} // namespace migrate
