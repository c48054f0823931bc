#pragma once
// An ImageStore in memory, for the engine's unit tests: repositories of manifests and blobs,
// optional referrers API, every call recorded, and failures injected on demand. It checks what a
// registry checks (a manifest's blobs and children are there before it is pushed; a blob's bytes
// hash to its digest), so a test catches an engine that pushes in the wrong order.

#include "registry/digest.hpp"
#include "registry/manifest.hpp"
#include "registry/store.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace test {

/// One registry's content, shared by the FakeStores the engine makes for it.
struct Backend {
  explicit Backend(std::string name) : host(std::move(name)) {}
  std::string host;
  std::mutex mutex;
  std::map<std::string, std::map<std::string, registry::Manifest>> manifests; ///< repo -> tag or digest
  std::map<std::string, std::string> blobs;                                   ///< digest -> bytes
  std::map<std::string, std::set<std::string>> linked;                        ///< repo -> blob digests
  std::vector<std::string> calls;                                             ///< "put_manifest repo ref", ...
  std::map<std::string, int> fail;           ///< call -> how many more times it fails (a reset)
  std::map<std::string, int> fail_forever;   ///< call -> kind: fails every time, with that kind
  bool referrers_api = false;
  std::map<std::string, std::vector<registry::Referrer>> referrers; ///< subject digest -> referrers
  std::function<void(const std::string& call)> on_call;             ///< hook, outside the lock
  int images = 0;                                                   ///< add_image calls so far

  /// Records `call`; an error when a failure is injected for it.
  std::optional<http::Error> record(const std::string& call) {
    std::optional<http::Error> e;
    {
      std::lock_guard lock(mutex);
      calls.push_back(call);
      if (auto it = fail.find(call); it != fail.end() && it->second > 0) {
        --it->second;
        e = http::make_error(http::ErrorKind::network, host + ": " + call + ": connection reset (injected)");
      } else if (auto f = fail_forever.find(call); f != fail_forever.end()) {
        e = http::make_error(static_cast<http::ErrorKind>(f->second), host + ": " + call + ": refused (injected)");
      }
    }
    if (on_call)
      on_call(call);
    return e;
  }
  std::size_t count(const std::string& prefix) {
    std::lock_guard lock(mutex);
    std::size_t n = 0;
    for (const auto& c : calls)
      n += c.rfind(prefix, 0) == 0;
    return n;
  }
  /// Index of the first call starting with `prefix`, or -1.
  long first(const std::string& prefix) {
    std::lock_guard lock(mutex);
    for (std::size_t i = 0; i < calls.size(); ++i)
      if (calls[i].rfind(prefix, 0) == 0)
        return static_cast<long>(i);
    return -1;
  }
  std::string digest_of(const std::string& repo, const std::string& ref) {
    std::lock_guard lock(mutex);
    auto r = manifests.find(repo);
    if (r == manifests.end())
      return {};
    auto m = r->second.find(ref);
    return m == r->second.end() ? std::string() : m->second.digest;
  }

  /// Stores a blob in `repo`; its digest.
  std::string add_blob(const std::string& repo, const std::string& bytes) {
    std::string digest = registry::sha256_digest(bytes);
    std::lock_guard lock(mutex);
    blobs[digest] = bytes;
    linked[repo].insert(digest);
    return digest;
  }
  /// Stores manifest bytes under `repo`:`ref` (and by digest); their digest.
  std::string add_manifest(const std::string& repo, const std::string& ref, const std::string& bytes,
                           const std::string& media_type) {
    registry::Manifest m{media_type, bytes, registry::sha256_digest(bytes)};
    std::lock_guard lock(mutex);
    manifests[repo][m.digest] = m;
    if (!ref.empty())
      manifests[repo][ref] = m;
    return m.digest;
  }
  /// An image of `layers` (their bytes), with its config, under repo:tag; its digest.
  std::string add_image(const std::string& repo, const std::string& tag, const std::vector<std::string>& layers,
                        std::string config_text = {}) {
    if (config_text.empty()) // each image its own config, as real ones (their creation times differ)
      config_text = R"({"architecture":"amd64","os":"linux","created":")" + repo + ":" + tag + ":" +
                    std::to_string(++images) + "\"}";
    nlohmann::json m = {{"schemaVersion", 2}, {"mediaType", registry::media::oci_manifest}};
    m["config"] = {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                   {"digest", add_blob(repo, config_text)},
                   {"size", config_text.size()}};
    m["layers"] = nlohmann::json::array();
    for (const auto& l : layers)
      m["layers"].push_back(
          {{"mediaType", "application/vnd.oci.image.layer.v1.tar"}, {"digest", add_blob(repo, l)}, {"size", l.size()}});
    return add_manifest(repo, tag, m.dump(), std::string(registry::media::oci_manifest));
  }
  /// An index of the images `children` (their digests, already in repo) under repo:tag; its digest.
  std::string add_index(const std::string& repo, const std::string& tag, const std::vector<std::string>& children) {
    nlohmann::json m = {{"schemaVersion", 2}, {"mediaType", registry::media::oci_index}, {"manifests", nlohmann::json::array()}};
    int n = 0;
    for (const auto& c : children) {
      std::size_t size;
      {
        std::lock_guard lock(mutex);
        size = manifests[repo][c].bytes.size();
      }
      m["manifests"].push_back({{"mediaType", registry::media::oci_manifest},
                                {"digest", c},
                                {"size", size},
                                {"platform", {{"os", "linux"}, {"architecture", n++ ? "arm64" : "amd64"}}}});
    }
    return add_manifest(repo, tag, m.dump(), std::string(registry::media::oci_index));
  }
};

class FakeStore final : public registry::ImageStore {
public:
  explicit FakeStore(std::shared_ptr<Backend> backend) : m_b(std::move(backend)) {}

  const std::string& host() const override { return m_b->host; }

  http::Result<std::vector<std::string>> list_tags(const std::string& repo) override {
    if (auto e = m_b->record("list_tags " + repo))
      return *e;
    std::lock_guard lock(m_b->mutex);
    std::vector<std::string> tags;
    for (const auto& [ref, m] : m_b->manifests[repo])
      if (ref.find(':') == std::string::npos)
        tags.push_back(ref);
    return tags;
  }

  http::Result<registry::Manifest> get_manifest(const std::string& repo, const std::string& ref) override {
    if (auto e = m_b->record("get_manifest " + repo + " " + ref))
      return *e;
    std::lock_guard lock(m_b->mutex);
    auto& ms = m_b->manifests[repo];
    if (auto it = ms.find(ref); it != ms.end())
      return it->second;
    return http::make_error(http::ErrorKind::not_found, m_b->host + "/" + repo + ":" + ref + ": manifest unknown", 404);
  }

  http::Result<std::optional<registry::ManifestHead>> head_manifest(const std::string& repo, const std::string& ref) override {
    if (auto e = m_b->record("head_manifest " + repo + " " + ref))
      return *e;
    std::lock_guard lock(m_b->mutex);
    auto& ms = m_b->manifests[repo];
    auto it = ms.find(ref);
    if (it == ms.end())
      return std::optional<registry::ManifestHead>();
    return std::optional<registry::ManifestHead>(registry::ManifestHead{
        it->second.digest, it->second.media_type, static_cast<std::int64_t>(it->second.bytes.size())});
  }

  http::Status put_manifest(const std::string& repo, const std::string& ref, const registry::Manifest& m) override {
    if (auto e = m_b->record("put_manifest " + repo + " " + ref))
      return *e;
    auto parsed = registry::parse_manifest(m.bytes, m.media_type);
    if (!parsed)
      return parsed.error();
    std::lock_guard lock(m_b->mutex);
    // What a registry checks: everything the manifest names is in the repository already.
    auto& linked = m_b->linked[repo];
    auto& ms = m_b->manifests[repo];
    if (parsed->config && !linked.count(parsed->config->digest))
      return http::make_error(http::ErrorKind::invalid, "config " + parsed->config->digest + " unknown in " + repo, 400);
    for (const auto& l : parsed->layers)
      if (!linked.count(l.digest))
        return http::make_error(http::ErrorKind::invalid, "blob " + l.digest + " unknown in " + repo, 400);
    for (const auto& c : parsed->manifests)
      if (!ms.count(c.digest))
        return http::make_error(http::ErrorKind::invalid, "child " + c.digest + " unknown in " + repo, 400);
    ms[m.digest] = m;
    ms[ref] = m;
    return {};
  }

  http::Result<bool> blob_exists(const std::string& repo, const std::string& digest) override {
    if (auto e = m_b->record("blob_exists " + repo + " " + digest))
      return *e;
    std::lock_guard lock(m_b->mutex);
    return m_b->linked[repo].count(digest) > 0;
  }

  http::Result<bool> mount_blob(const std::string& repo, const std::string& digest, const std::string& from) override {
    if (auto e = m_b->record("mount_blob " + repo + " " + digest + " " + from))
      return *e;
    std::lock_guard lock(m_b->mutex);
    if (!m_b->linked[from].count(digest))
      return false;
    m_b->linked[repo].insert(digest);
    return true;
  }

  http::Result<std::uint64_t> copy_blob_from(registry::ImageStore& source, const std::string& source_repository,
                                             const std::string& repo, const registry::Descriptor& blob,
                                             const registry::ByteCounter& on_bytes) override {
    if (auto e = m_b->record("copy_blob_from " + repo + " " + blob.digest))
      return *e;
    std::string bytes;
    auto read = source.read_blob(source_repository, blob, [&](std::string_view chunk) -> http::Status {
      bytes.append(chunk);
      return {};
    });
    if (!read)
      return read.error();
    if (registry::sha256_digest(bytes) != blob.digest)
      return http::make_error(http::ErrorKind::digest_mismatch, "bytes do not hash to " + blob.digest);
    if (on_bytes)
      on_bytes(bytes.size());
    std::lock_guard lock(m_b->mutex);
    m_b->blobs[blob.digest] = bytes;
    m_b->linked[repo].insert(blob.digest);
    return bytes.size();
  }

  http::Result<std::uint64_t> read_blob(const std::string& repo, const registry::Descriptor& blob,
                                        const http::ChunkObserver& sink) override {
    if (auto e = m_b->record("read_blob " + repo + " " + blob.digest))
      return *e;
    std::string bytes;
    {
      std::lock_guard lock(m_b->mutex);
      if (!m_b->linked[repo].count(blob.digest))
        return http::make_error(http::ErrorKind::not_found, "blob unknown", 404);
      bytes = m_b->blobs[blob.digest];
    }
    if (auto st = sink(bytes); !st)
      return st.error();
    return bytes.size();
  }

  http::Result<std::optional<std::vector<registry::Referrer>>> list_referrers(const std::string& repo,
                                                                              const std::string& digest) override {
    if (auto e = m_b->record("list_referrers " + repo + " " + digest))
      return *e;
    std::lock_guard lock(m_b->mutex);
    if (!m_b->referrers_api)
      return std::optional<std::vector<registry::Referrer>>();
    return std::optional<std::vector<registry::Referrer>>(m_b->referrers[digest]);
  }

  bool referrers_api_absent() const override { return !m_b->referrers_api; }

private:
  std::shared_ptr<Backend> m_b;
};

} // namespace test
