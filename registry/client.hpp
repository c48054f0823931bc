#pragma once
// A client for one registry speaking the OCI distribution API / Docker Registry HTTP API V2.
// Thread-safe: one Registry object is shared by every worker talking to that registry.

#include "http/client.hpp"
#include "registry/auth.hpp"
#include "registry/manifest.hpp"
#include "registry/limiter.hpp"
#include "registry/store.hpp"

#include <nlohmann/json_fwd.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace registry {

/// A logger that drops everything: libraries are silent unless the CLI gives them a sink.
std::shared_ptr<spdlog::logger> null_logger();

struct RegistryOptions {
  std::string host;      ///< as written in references: "docker.io", "127.0.0.1:5000"
  bool insecure = false; ///< plain HTTP
  http::Tls tls;
  Credentials credentials;
  bool chunked_upload = false; ///< PATCH then PUT instead of one monolithic PUT
  std::string proxy;           ///< proxy URL for this registry ("" = environment)
  std::string address;         ///< connect here instead of resolving host ("10.0.0.5" or "10.0.0.5:8443")
  std::string page_size = "1000"; ///< entries asked for per page of tag and catalog listings
};

/// What the answer to one of many HEADs sent together says.
struct HeadAnswer {
  std::optional<std::optional<ManifestHead>> head; ///< settled: the head, or nullopt inside when absent
  std::optional<http::Error> failed;               ///< unsettled by a retryable failure: the first try's error
};

class Registry final : public ImageStore {
public:
  /// `limiter`: the caps of this host (auth.json's maxConcurrency, rps), shared by every Registry of
  /// it; null for none.
  Registry(http::Client& client, RegistryOptions options, std::shared_ptr<Limiter> limiter,
           std::shared_ptr<spdlog::logger> log = null_logger());
  Registry(http::Client& client, RegistryOptions options, std::shared_ptr<spdlog::logger> log = null_logger())
      : Registry(client, std::move(options), nullptr, std::move(log)) {}

  const std::string& host() const override { return m_options.host; }
  std::uint64_t resumed_downloads() const override { return m_resumed; }

  /// Every tag of a repository, following Link pagination.
  Result<std::vector<std::string>> list_tags(const std::string& repository) override;

  /// The repositories below `ns`: the catalog (GET /v2/_catalog, paginated); where the catalog is
  /// refused (Harbor lets only system admins read it), Harbor's project API for the project `ns`
  /// starts with, once an anonymous ping showed the host is a Harbor. An error naming both when
  /// neither works. (The answer may hold repositories outside `ns`: the caller keeps those below it.)
  Result<std::vector<std::string>> list_repositories(const std::string& ns) override;

  /// Every repository of the registry (GET /v2/_catalog, paginated). Many registries refuse it to
  /// ordinary users: that is an error saying so.
  Result<std::vector<std::string>> list_catalog();

  /// The repositories of a Harbor project ("project/repo" names), through Harbor's v2.0 API
  /// (GET /api/v2.0/projects/NAME/repositories, paginated), with Basic credentials.
  Result<std::vector<std::string>> list_harbor_project(const std::string& project);

  /// Fetches a manifest by tag or digest; the digest is computed from the bytes and checked
  /// against a digest reference and the Docker-Content-Digest header.
  Result<Manifest> get_manifest(const std::string& repository, const std::string& reference) override;

  /// HEAD on a manifest; nullopt when it does not exist.
  Result<std::optional<ManifestHead>> head_manifest(const std::string& repository, const std::string& reference) override;
  /// head_manifest as a request to send with others (http::Client::stream), credentials included
  /// when known; nullopt when this registry's requests must go one at a time (caps in auth.json), or
  /// when a token would have to be fetched first (never here: the caller must not wait on it).
  /// With `expected` (a digest), the request is conditional (If-None-Match: the manifest's ETag is
  /// its digest): a registry that finds the tag at that digest answers 304 without reading the
  /// manifest, which is most of the work of a HEAD in distribution's registry. A HEAD by digest is
  /// never conditional (distribution would answer 304 without looking the digest up).
  std::optional<http::Request> head_request(const std::string& repository, const std::string& reference,
                                            const std::string& expected = {});
  /// Reads the answer to a head_request. Anything but a head, a 404, or a 304 to a conditional
  /// request (a head with the expected digest, and no media type or size) settles nothing: ask again
  /// with head_manifest (which retries, authenticates and explains), after the wait `failed` asks
  /// for when the answer was a retryable failure (a 5xx, a 429 with its Retry-After, a reset).
  HeadAnswer read_head(const http::Request& request, const Result<http::Response>& response);
  /// A place for a head_request under this registry's window of checks, when one is free now
  /// (an empty slot without a limiter); nullopt when that many are in flight already.
  std::optional<Limiter::Slot> try_check_slot() const;
  /// The run is stopping (known to this registry's limiter).
  bool stopped() const { return m_limiter && m_limiter->stopped(); }
  /// Tells a slot how its request went (the limiter's windows learn it when it is released).
  static void learn(Limiter::Slot& slot, const Result<http::Response>& response);

  /// Whether this registry wants Bearer tokens (known after its first 401).
  bool wants_tokens() const override { return m_auth.wants_tokens(); }
  /// Fetches the pull token of `repository` now, unless one is in hand or being fetched; false when
  /// there is none after all (the token server failed).
  bool fetch_pull_token(const std::string& repository) override;

  /// The referrers of a digest (GET /v2/<name>/referrers/<digest>, paginated); nullopt when the registry
  /// does not have the API (404), which is then remembered and not asked again.
  Result<std::optional<std::vector<Referrer>>> list_referrers(const std::string& repository,
                                                              const std::string& digest) override;
  /// True once a 404 (or 400, 405, 501) has shown the registry has no referrers API.
  bool referrers_api_absent() const override { return m_referrers_api.load() == 0; }

  /// Pushes manifest bytes under a tag or digest.
  http::Status put_manifest(const std::string& repository, const std::string& reference, const Manifest& manifest) override;

  /// Whether the blob exists in the repository.
  Result<bool> blob_exists(const std::string& repository, const std::string& digest) override;

  /// Asks the registry to mount a blob from another repository; true when it did.
  Result<bool> mount_blob(const std::string& repository, const std::string& digest, const std::string& from) override;

  /// Streams a blob from `source` into this registry, verifying its digest on the way: from another
  /// registry through one libcurl multi handle (download and upload at once), from a layout file by file.
  Result<std::uint64_t> copy_blob_from(ImageStore& source, const std::string& source_repository,
                                       const std::string& repository, const Descriptor& blob,
                                       const ByteCounter& on_bytes = {}) override;

  /// GETs a blob (following redirects) into `sink`.
  Result<std::uint64_t> read_blob(const std::string& repository, const Descriptor& blob,
                                  const http::ChunkObserver& sink) override;

  /// Sends a request with authorisation for `scope`, re-authenticating once on 401. With `sink`, the
  /// body of a 2xx answer streams into it.
  Result<http::Response> send(http::Request request, const std::string& scope, const http::ChunkObserver& sink = {},
                              const http::ResumeHook& on_resume = {});
  /// For a blob download that broke after some bytes: logs why, attaches a token still good for `scope`.
  http::ResumeHook resume_blob(const std::string& what, std::uint64_t size, const std::string& scope);

  /// Base URL "http(s)://api-host/v2/".
  std::string base_url() const;

  /// Whether a URL is on this registry's API host, same scheme (only those get its credentials).
  bool owns(const std::string& url) const;

private:
  http::Request request(const std::string& method, const std::string& path) const;
  /// A Location or Link of this registry's answer to a request for `base`, resolved; a plain-http
  /// URL of this registry's own https address is taken as the https one it must be.
  std::string resolve(const std::string& base, const std::string& location) const;
  mutable std::atomic<bool> m_http_location_warned{false};
  /// "insecure": true, but the registry answered plain HTTP as an HTTPS server does: spoken to over
  /// https from then on, without verifying its certificate (what "insecure" means to docker and
  /// containers/image: plain HTTP allowed, TLS not verified).
  mutable std::atomic<bool> m_https{false};
  /// Whether the registry answers plain HTTP as an HTTPS server does (Go's 400 "Client sent an HTTP
  /// request to an HTTPS server").
  bool answers_as_https_server() const;
  http::Request manifest_request(const std::string& method, const std::string& repository,
                                 const std::string& reference) const;
  std::string manifest_name(const std::string& repository, const std::string& reference) const;
  http::Status each_page(std::string url, const std::string& scope, const std::string& what,
                         const std::function<void(const nlohmann::json&)>& on_page);
  Result<std::vector<std::string>> list_paginated(std::string url, const std::string& scope, const char* field,
                                                  const std::string& what);
  /// The error response of a HEAD, with a body fetched by GET when the HEAD had none.
  http::Response explain(const http::Request& head, const http::Response& response, const std::string& scope);
  Result<std::string> start_upload(const std::string& repository, const std::string& scope);
  Result<std::uint64_t> copy_from_registry(Registry& source, const std::string& source_repository,
                                           const std::string& repository, const Descriptor& blob,
                                           const ByteCounter& on_bytes);
  /// The closing PUT ?digest= of a chunked upload, at the Location the PATCH answered with.
  http::Status finish_chunked(const std::string& patch_url, const http::Response& patched, const std::string& digest,
                              const std::string& scope, const std::string& what);
  /// Upload of a blob from a local file (monolithic, or one PATCH + PUT when chunked), hashed on the way.
  Result<std::uint64_t> upload_file(const std::string& path, const std::string& repository, const Descriptor& blob,
                                    const ByteCounter& on_bytes);

  http::Client& m_client;
  RegistryOptions m_options;
  std::shared_ptr<spdlog::logger> m_log;
  Authenticator m_auth;
  std::atomic<bool> m_chunked; ///< starts from the options; a registry may ask for it later
  std::atomic<std::uint64_t> m_resumed{0}; ///< downloads resumed (resume_blob)
  std::atomic<int> m_referrers_api{-1}; ///< -1 unknown, 0 absent (404), 1 present
  // The first request finds out alone; the others wait for its answer.
  std::mutex m_probe_mutex;
  std::condition_variable m_probe_cv;
  bool m_probing = false; ///< the first request is under way
  bool m_probed = false;  ///< the first request was sent
  std::atomic<long> m_quota_left{-1};  ///< Docker Hub's ratelimit-remaining (-1: not told)
  std::atomic<bool> m_quota_warned{false};
  /// A 429 once ratelimit-remaining said 0: the quota is spent, and retrying now cannot help.
  bool quota_spent(const http::Response& response) const {
    return response.status == 429 && m_quota_left.load() == 0;
  }
  /// Reads ratelimit-remaining ("95;w=21600"); warns once when few requests are left.
  void note_quota(const http::Response& response);
  /// A slot of this host's Limiter (none needed without caps); cancelled when the run stopped first.
  Result<Limiter::Slot> slot(Limiter::Work work = Limiter::Work::check) const;
  /// A request as it is (no registry authorisation), within the host's limits.
  Result<http::Response> send_direct(const http::Request& request);
  std::vector<std::string> m_connect_to;
  std::shared_ptr<Limiter> m_limiter;
};

/// "repository:NAME:pull" / "repository:NAME:pull,push".
std::string pull_scope(const std::string& repository);
std::string push_scope(const std::string& repository);

/// Turns a registry's error answer into an Error: kind from the status and the JSON error codes,
/// message "<what>: <status> <CODE>: <message>".
http::Error registry_error(const std::string& what, const http::Response& response);

} // namespace registry
