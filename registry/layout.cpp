#include "registry/layout.hpp"

#include "registry/digest.hpp"
#include "registry/reference.hpp"
#include "util/file.hpp"
#include "util/json.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/file.h>
#include <unistd.h>

namespace registry {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t max_manifest_bytes = 16u << 20;

bool is_digest(const std::string& reference) { return reference.find(':') != std::string::npos; }

http::Error io_error(const std::string& what) {
  return http::make_error(http::ErrorKind::invalid, what + ": " + std::strerror(errno));
}

/// A file descriptor closed on scope exit.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0)
      ::close(fd);
  }
};

/// An exclusive flock on the layout's directory while index.json is read, changed and written:
/// two processes (shards of one Job writing one layout) do not lose each other's tags.
struct DirLock {
  int fd;
  explicit DirLock(const std::string& dir) : fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {
    if (fd >= 0)
      while (::flock(fd, LOCK_EX) != 0 && errno == EINTR) {
      }
  }
  ~DirLock() {
    if (fd >= 0)
      ::close(fd); // closing releases the lock
  }
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
};

/// A layout's small file (index.json, a manifest): a regular file, not a symlink, FIFO or device
/// (a tampered layout), at most 16 MiB.
Result<std::string> read_small_file(const std::string& path, const std::string& what) {
  std::string why;
  auto bytes = util::read_regular_file(path, max_manifest_bytes, why);
  if (!bytes) {
    std::error_code ec;
    return http::make_error(fs::exists(fs::symlink_status(path, ec)) ? http::ErrorKind::invalid : http::ErrorKind::not_found,
                            what + ": " + why);
  }
  return std::move(*bytes);
}

} // namespace

Layout::Layout(std::string path) : m_path(std::move(path)), m_name("oci:" + m_path) {}

Result<std::string> Layout::blob_path(const std::string& digest) const {
  if (!valid_digest(digest))
    return http::make_error(http::ErrorKind::invalid, m_name + ": invalid digest \"" + digest + "\"");
  auto colon = digest.find(':');
  return m_path + "/blobs/" + digest.substr(0, colon) + "/" + digest.substr(colon + 1);
}

std::optional<std::string> Layout::blob_file(const std::string& digest) const {
  auto p = blob_path(digest);
  std::error_code ec;
  if (!p || !fs::is_regular_file(fs::symlink_status(*p, ec))) // a symlink is not a blob of the layout
    return std::nullopt;
  return *p;
}

Result<nlohmann::json> Layout::read_index() const {
  const std::string file = m_path + "/index.json";
  std::error_code ec;
  if (!fs::exists(file, ec))
    return http::make_error(http::ErrorKind::not_found, m_name + " is not an OCI image layout (no index.json)");
  auto bytes = read_small_file(file, m_name);
  if (!bytes)
    return bytes.error();
  try {
    auto j = util::parse_json(*bytes);
    if (!j.is_object() || !j.contains("manifests") || !j["manifests"].is_array())
      return http::make_error(http::ErrorKind::invalid, m_name + "/index.json has no \"manifests\" list");
    return j;
  } catch (const nlohmann::json::exception& e) {
    return http::make_error(http::ErrorKind::invalid, m_name + "/index.json is not JSON (" + util::parse_error_text(e) + ")");
  }
}

http::Status Layout::write_file(const std::string& path, std::string_view bytes) const {
  if (auto why = util::write_file_atomically(path, bytes, 0644); !why.empty())
    return http::make_error(http::ErrorKind::invalid, m_name + ": " + why);
  return {};
}

http::Status Layout::create() {
  std::lock_guard lock(m_index_mutex); // never two writers of a first index.json
  std::error_code ec;
  fs::create_directories(m_path, ec); // the layout's own directory, as the user named it
  if (ec)
    return http::make_error(http::ErrorKind::invalid, m_name + ": cannot create the layout: " + ec.message());
  // Below it, nothing someone else planted (a symlinked blobs/sha256 in a shared destination) is followed.
  if (auto why = util::make_directories_below(m_path, "blobs/sha256"); !why.empty())
    return http::make_error(http::ErrorKind::invalid, m_name + ": cannot create the layout: " + why);
  DirLock across_processes(m_path);
  if (!fs::exists(m_path + "/oci-layout", ec))
    if (auto st = write_file(m_path + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})"); !st)
      return st;
  if (!fs::exists(m_path + "/index.json", ec))
    if (auto st = write_file(m_path + "/index.json", R"({"schemaVersion":2,"manifests":[]})"); !st)
      return st;
  return {};
}

Result<std::vector<std::string>> Layout::list_tags(const std::string&) {
  std::lock_guard lock(m_index_mutex);
  auto index = read_index();
  if (!index)
    return index.error();
  std::vector<std::string> tags;
  for (const auto& d : (*index)["manifests"]) {
    if (!d.is_object() || !d.contains("annotations") || !d["annotations"].is_object())
      continue;
    auto tag = util::string_field(d["annotations"], ref_name_annotation);
    if (!tag.empty() && std::find(tags.begin(), tags.end(), tag) == tags.end())
      tags.push_back(std::move(tag));
  }
  return tags;
}

Result<std::optional<Descriptor>> Layout::resolve(const std::string& reference) {
  if (is_digest(reference)) {
    auto p = blob_path(reference);
    if (!p)
      return p.error();
    std::error_code ec;
    auto size = fs::file_size(*p, ec);
    if (ec)
      return std::optional<Descriptor>();
    Descriptor d;
    d.digest = reference;
    d.size = static_cast<std::int64_t>(size);
    return std::optional<Descriptor>(d);
  }
  std::lock_guard lock(m_index_mutex);
  auto index = read_index();
  if (!index)
    return index.error();
  std::optional<Descriptor> found;
  for (const auto& d : (*index)["manifests"]) {
    if (!d.is_object() || !d.contains("annotations") || !d["annotations"].is_object())
      continue;
    auto name = util::string_field(d["annotations"], ref_name_annotation);
    if (name != reference)
      continue;
    if (!d.contains("digest") || !d["digest"].is_string() || !valid_digest(d["digest"].get<std::string>()))
      return http::make_error(http::ErrorKind::invalid, m_name + "/index.json: the entry for \"" + reference +
                                                            "\" has no valid digest");
    Descriptor out;
    out.digest = d["digest"].get<std::string>();
    out.media_type = util::string_field(d, "mediaType");
    if (!out.media_type.empty() && !valid_media_type(out.media_type))
      return http::make_error(http::ErrorKind::invalid, m_name + "/index.json: the entry for \"" + reference +
                                                            "\" has a mediaType that is not a media type (RFC 6838)");
    out.size = d.contains("size") && d["size"].is_number_integer() ? d["size"].get<std::int64_t>() : 0;
    found = out; // the last entry with a name wins, as a later write replaces an earlier one
  }
  return found;
}

Result<Manifest> Layout::get_manifest(const std::string&, const std::string& reference) {
  const std::string what = "reading manifest " + m_name + (is_digest(reference) ? "@" : ":") + reference;
  auto d = resolve(reference);
  if (!d)
    return d.error().context(what);
  if (!*d)
    return http::make_error(http::ErrorKind::not_found, what + ": not in the layout");
  auto path = blob_path((*d)->digest);
  if (!path)
    return path.error();
  auto bytes = read_small_file(*path, what);
  if (!bytes)
    return bytes.error();
  Manifest m;
  m.bytes = std::move(*bytes);
  m.digest = sha256_digest(m.bytes);
  if (auto got = digest_like((*d)->digest, m.bytes); got != (*d)->digest)
    return http::make_error(http::ErrorKind::digest_mismatch,
                            what + ": the blob file hashes to " + got + ", not " + (*d)->digest);
  m.media_type = (*d)->media_type;
  if (m.media_type.empty()) {
    try {
      auto j = util::parse_json(m.bytes);
      if (j.is_object() && j.contains("mediaType") && j["mediaType"].is_string())
        m.media_type = j["mediaType"].get<std::string>();
    } catch (const nlohmann::json::exception&) {
      return http::make_error(http::ErrorKind::invalid, what + ": not a JSON manifest");
    }
  }
  if (!valid_media_type(m.media_type))
    return http::make_error(http::ErrorKind::invalid, what + ": its media type is not one (RFC 6838)");
  return m;
}

Result<std::optional<ManifestHead>> Layout::head_manifest(const std::string& repository, const std::string& reference) {
  auto d = resolve(reference);
  if (!d) {
    if (d.error().kind == http::ErrorKind::not_found)
      return std::optional<ManifestHead>(); // no layout yet: nothing in it
    return d.error();
  }
  if (!*d)
    return std::optional<ManifestHead>();
  if (is_digest(reference) || (*d)->media_type.empty()) {
    auto m = get_manifest(repository, (*d)->digest);
    if (!m)
      return m.error();
    return std::optional<ManifestHead>(
        ManifestHead{m->digest, m->media_type, static_cast<std::int64_t>(m->bytes.size())});
  }
  return std::optional<ManifestHead>(ManifestHead{(*d)->digest, (*d)->media_type, (*d)->size});
}

http::Status Layout::put_manifest(const std::string&, const std::string& reference, const Manifest& manifest) {
  if (auto why = invalid_name("layout", reference); !why.empty())
    return http::make_error(http::ErrorKind::invalid, m_name + ": refusing " + why);
  const std::string what = "writing manifest " + m_name + (is_digest(reference) ? "@" : ":") + reference;
  if (!valid_media_type(manifest.media_type))
    return http::make_error(http::ErrorKind::invalid, what + ": its media type is not one (RFC 6838)");
  if (auto st = create(); !st)
    return st;
  auto path = blob_path(manifest.digest);
  if (!path)
    return path.error();
  if (sha256_digest(manifest.bytes) != manifest.digest)
    return http::make_error(http::ErrorKind::digest_mismatch, what + ": bytes do not match " + manifest.digest);
  // A file already there is kept only when it holds these very bytes (another tool may have left a
  // truncated one).
  auto present = read_small_file(*path, what);
  if (!present || sha256_digest(*present) != manifest.digest)
    if (auto st = write_file(*path, manifest.bytes); !st)
      return st;
  if (is_digest(reference))
    return {};
  std::lock_guard lock(m_index_mutex);
  DirLock across_processes(m_path);
  auto index = read_index();
  if (!index)
    return index.error();
  auto& list = (*index)["manifests"];
  nlohmann::json kept = nlohmann::json::array();
  for (auto& d : list) {
    bool same_name = d.is_object() && d.contains("annotations") && d["annotations"].is_object() &&
                     util::string_field(d["annotations"], ref_name_annotation) == reference;
    if (!same_name)
      kept.push_back(std::move(d));
  }
  kept.push_back({{"mediaType", manifest.media_type},
                  {"digest", manifest.digest},
                  {"size", manifest.bytes.size()},
                  {"annotations", {{ref_name_annotation, reference}}}});
  list = std::move(kept);
  return write_file(m_path + "/index.json", index->dump(2) + "\n");
}

Result<bool> Layout::blob_exists(const std::string&, const std::string& digest) { return blob_file(digest).has_value(); }

Result<std::uint64_t> Layout::copy_blob_from(ImageStore& source, const std::string& source_repository,
                                             const std::string&, const Descriptor& blob, const ByteCounter& on_bytes) {
  const std::string what = "copying blob " + blob.digest + " from " + source.host() + " to " + m_name;
  if (auto st = create(); !st)
    return st.error();
  auto path = blob_path(blob.digest);
  if (!path)
    return path.error();
  if (auto why = util::make_directories_below(m_path, "blobs/" + blob.digest.substr(0, blob.digest.find(':')));
      !why.empty())
    return http::make_error(http::ErrorKind::invalid, what + ": " + why);
  util::AtomicFile file(*path, 0644); // removed unless committed below
  if (!file.ok())
    return http::make_error(http::ErrorKind::invalid, what + ": " + file.error());
  auto digester = Digester::for_digest(blob.digest);
  if (!digester)
    return digester.error().context(what);
  Digester& hash = *digester;
  std::uint64_t written = 0;
  auto read = source.read_blob(source_repository, blob, [&](std::string_view chunk) -> http::Status {
    written += chunk.size();
    if (written > static_cast<std::uint64_t>(blob.size))
      return http::make_error(http::ErrorKind::digest_mismatch, what + ": more bytes than the descriptor's " +
                                                                    std::to_string(blob.size));
    hash.update(chunk);
    if (!file.write(chunk))
      return http::make_error(http::ErrorKind::invalid, what + ": " + file.error());
    if (on_bytes)
      on_bytes(chunk.size());
    return {};
  });
  if (!read)
    return read.error();
  auto got = hash.finish();
  if (written != static_cast<std::uint64_t>(blob.size) || got != blob.digest)
    return http::make_error(http::ErrorKind::digest_mismatch, what + ": content hashes to " + got + " (" +
                                                                  std::to_string(written) + " bytes), not " +
                                                                  blob.digest + "; not stored");
  if (!file.commit())
    return http::make_error(http::ErrorKind::invalid, what + ": " + file.error());
  return written;
}

Result<std::uint64_t> Layout::read_blob(const std::string&, const Descriptor& blob, const http::ChunkObserver& sink) {
  const std::string what = "reading blob " + blob.digest + " from " + m_name;
  auto path = blob_path(blob.digest);
  if (!path)
    return path.error();
  std::string why;
  Fd f{util::open_regular_file(*path, why)}; // not a symlink, a FIFO or a device of a tampered layout
  if (f.fd < 0) {
    std::error_code ec;
    return http::make_error(fs::exists(fs::symlink_status(*path, ec)) ? http::ErrorKind::invalid : http::ErrorKind::not_found,
                            what + ": " + why);
  }
  std::string buffer(128 * 1024, '\0');
  std::uint64_t total = 0;
  while (true) {
    auto n = ::read(f.fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return io_error(what);
    if (n == 0)
      return total;
    total += static_cast<std::uint64_t>(n);
    if (auto st = sink(std::string_view(buffer.data(), static_cast<std::size_t>(n))); !st)
      return st.error();
  }
}

} // namespace registry
