// Why this file is over 600 lines: Registry is one ImageStore over the distribution API, and its
// parts share the authenticated send path (challenge, token scopes, quota and redirect rules,
// Location checks): manifests (HEAD/GET/PUT), blobs (exists, mount, monolithic/chunked upload, the
// streamed copy from another store), listings (tags, catalog, Harbor's API, referrers). HEAD
// batching is in head_batch.cpp, tokens in auth.cpp, limits in limiter.cpp.
#include "registry/client.hpp"

#include "http/url.hpp"
#include "registry/digest.hpp"
#include "util/file.hpp"
#include "util/json.hpp"
#include "util/text.hpp"
#include "registry/reference.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <memory>
#include <set>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

namespace registry {

namespace {


std::string with_query(const std::string& url, const std::string& param) {
  return url + (url.find('?') == std::string::npos ? "?" : "&") + param;
}

bool is_digest_reference(const std::string& reference) { return reference.find(':') != std::string::npos; }

/// Pages of one listing (tags, catalog, referrers, a Harbor project): 10,000 pages of 1,000 tags is
/// ten million, far beyond any real repository; a registry that never stops is cut off there.
constexpr int max_pages = 10000;
/// Entries of one listing held at once (a tag list, a catalog, a Harbor project, referrers): far
/// beyond real repositories, and a few tens of MB at most whatever a registry sends.
constexpr std::size_t max_listed = 500000;

/// invalid_name() as the error of a request that is not sent; nullopt for good names. With
/// `digest`, the reference must be a digest (a blob's).
std::optional<http::Error> bad_name(const std::string& host, const std::string& repository,
                                    const std::string& reference = {}, bool digest = false) {
  auto why = digest && !valid_digest(reference)
                 ? "\"" + util::escape_control(reference.substr(0, 200)) + "\" as a digest (sha256:<64 hex> or sha512:<128 hex>)"
                 : invalid_name(repository, reference);
  if (why.empty())
    return std::nullopt;
  return http::make_error(http::ErrorKind::invalid, "registry " + host + ": refusing " + why);
}

} // namespace

std::shared_ptr<spdlog::logger> null_logger() {
  static auto log = std::make_shared<spdlog::logger>("null", std::make_shared<spdlog::sinks::null_sink_mt>());
  return log;
}

std::string pull_scope(const std::string& repository) { return "repository:" + repository + ":pull"; }
std::string push_scope(const std::string& repository) { return "repository:" + repository + ":pull,push"; }

http::Error registry_error(const std::string& what, const http::Response& response) {
  http::ErrorKind kind = http::ErrorKind::http_status;
  if (response.status == 404)
    kind = http::ErrorKind::not_found;
  else if (response.status == 401 || response.status == 403)
    kind = http::ErrorKind::unauthorized;
  std::string detail;
  try {
    auto j = util::parse_json(response.body);
    if (j.is_object() && j.contains("errors") && j["errors"].is_array()) {
      for (const auto& e : j["errors"]) {
        if (!e.is_object())
          continue;
        std::string code = util::string_field(e, "code");
        std::string message = util::string_field(e, "message");
        if (code == "MANIFEST_UNKNOWN" || code == "NAME_UNKNOWN" || code == "BLOB_UNKNOWN")
          kind = http::ErrorKind::not_found;
        else if (code == "UNAUTHORIZED" || code == "DENIED")
          kind = http::ErrorKind::unauthorized;
        if (!detail.empty())
          detail += "; ";
        // The registry's words go to logs and terminals: never its control characters.
        detail += util::escape_control(code.substr(0, 100)) + (message.empty() ? "" : ": " + util::escape_control(message.substr(0, 500)));
      }
    }
  } catch (const nlohmann::json::exception&) {
  }
  if (detail.empty() && !response.body.empty())
    detail = util::escape_control(response.body.substr(0, 200));
  if (response.status == 400 && response.body.find("HTTP request to an HTTPS server") != std::string::npos) {
    // Go's TLS servers answer plain HTTP this way: the auth file says "insecure" for an HTTPS registry.
    return http::make_error(http::ErrorKind::tls,
                             what + ": the registry speaks HTTPS, but the auth file says \"insecure\": true (plain "
                                    "HTTP); remove it (use \"ca\" for a private CA)",
                             400);
  }
  std::string message = what + ": HTTP " + std::to_string(response.status) + (detail.empty() ? "" : " " + detail);
  auto e = http::make_error(kind, message, response.status);
  auto retry_after = response.header("retry-after");
  if (!retry_after.empty() && std::all_of(retry_after.begin(), retry_after.end(), ::isdigit) && retry_after.size() < 7)
    e.retry_after = std::chrono::seconds(std::stol(retry_after));
  return e;
}

Registry::Registry(http::Client& client, RegistryOptions options, std::shared_ptr<Limiter> limiter,
                   std::shared_ptr<spdlog::logger> log)
    : m_client(client), m_options(std::move(options)), m_log(log ? std::move(log) : null_logger()),
      m_auth(client, m_options.host, m_options.credentials, m_options.tls, m_options.insecure, m_log),
      m_chunked(m_options.chunked_upload), m_limiter(std::move(limiter)) {
  if (!m_options.address.empty()) {
    // A VPC endpoint or private line: connect to `address`, keep the name for Host and TLS.
    const auto name = http::split_host_port(is_docker_hub(m_options.host) ? "registry-1.docker.io" : m_options.host,
                                            m_options.insecure ? "80" : "443");
    const auto address = http::split_host_port(m_options.address, name.port);
    m_connect_to.push_back(name.host + ":" + name.port + ":" + address.host + ":" + address.port);
  }
  m_auth.set_route(m_options.proxy, m_connect_to);
}

bool Registry::owns(const std::string& url) const {
  // The scheme counts: an https registry's credentials never go to http://same-host (a TLS proxy
  // in front of it that answers with plain-http Locations would otherwise get them in cleartext).
  http::Url a, b;
  return http::parse_url(url, a) && http::parse_url(base_url(), b) && a.scheme == b.scheme && a.authority == b.authority;
}

std::string Registry::resolve(const std::string& base, const std::string& location) const {
  std::string url = http::resolve_url(base, location);
  http::Url u, own;
  // An https registry behind a TLS-terminating proxy that does not say X-Forwarded-Proto names its
  // own address with http:// (distribution builds Locations from the request it saw). The same
  // host and port cannot speak both: it is this registry, over TLS. (owns() would otherwise keep the
  // credentials from it, and the request would fail.)
  if ((!m_options.insecure || m_https) && http::parse_url(url, u) && http::parse_url(base_url(), own) && u.scheme == "http" &&
      u.authority == own.authority) {
    if (!m_http_location_warned.exchange(true))
      m_log->warn("registry {} names its own address with http:// (a TLS proxy in front of it without "
                  "X-Forwarded-Proto?); those URLs are used over https",
                  m_options.host);
    url = "https" + url.substr(4);
  }
  return url;
}

std::string Registry::base_url() const {
  std::string host = is_docker_hub(m_options.host) ? "registry-1.docker.io" : m_options.host;
  return std::string(m_options.insecure && !m_https ? "http" : "https") + "://" + host + "/v2/";
}

http::Request Registry::request(const std::string& method, const std::string& path) const {
  http::Request r;
  r.method = method;
  r.url = base_url() + path;
  r.tls = m_options.tls;
  if (m_https)
    r.tls.verify = false; // "insecure" over https: not verified, as the user asked
  r.proxy = m_options.proxy;
  r.connect_to = m_connect_to;
  return r;
}

namespace {
std::string authorization_of(const http::Request& r) {
  for (const auto& [name, value] : r.headers)
    if (name == "Authorization")
      return value;
  return {};
}
} // namespace

Result<http::Response> Registry::send(http::Request request, const std::string& scope, const http::ChunkObserver& sink,
                                      const http::ResumeHook& on_resume) {
  for (int attempt = 0;; ++attempt) {
    http::Request r = request;
    const bool own = owns(r.url);
    if (own) // an upload Location or a Link may name another host: it never gets our credentials
      m_auth.authorize(r, scope);
    auto held = slot(sink ? Limiter::Work::transfer : Limiter::Work::check);
    if (!held)
      return held.error();
    if (r.method == "HEAD")
      held->timed();
    auto resp = m_client.download(r, sink, on_resume);
    if (own) // an upload Location or a redirect on another host says nothing about this registry's load
      learn(*held, resp);
    held = Limiter::Slot();
    if (!resp)
      return resp.error().context("registry " + m_options.host);
    note_quota(*resp);
    if (quota_spent(*resp))
      return http::make_error(http::ErrorKind::rate_limited,
                              "registry " + m_options.host + ": " + r.method + " " + http::redact_url(r.url) +
                                  ": the registry's pull quota is used up (ratelimit-remaining: " +
                                  util::escape_control(resp->header("ratelimit-remaining").substr(0, 100)) +
                                  "); retrying now would not help: give credentials with a higher quota, or wait",
                              429);
    if (resp->status == 407)
      return http::make_error(http::ErrorKind::unauthorized,
                              "registry " + m_options.host + ": " + r.method + " " + http::redact_url(r.url) +
                                  ": the proxy asks for credentials it did not get or refused (407 Proxy Authentication Required)",
                              407);
    if (m_options.insecure && resp->status == 400 && r.url.rfind("http://", 0) == 0 &&
        (m_https || resp->body.find("HTTP request to an HTTPS server") != std::string::npos ||
         (r.method == "HEAD" && answers_as_https_server()))) {
      // "insecure": true for a registry that speaks HTTPS (the SWR documentation's own example):
      // https without certificate verification, said once, and this request again over https.
      if (!m_https.exchange(true))
        m_log->warn("registry {}: \"insecure\": true, and it speaks HTTPS: spoken to over https without verifying "
                    "its certificate (give \"ca\" instead of \"insecure\" to verify it)",
                    m_options.host);
      // (Not `own`: a request built before another thread switched names http:// and is ours still.)
      if (http::authority_of(r.url) == http::authority_of(base_url())) {
        request.url = "https" + request.url.substr(4);
        request.tls.verify = false;
        attempt = -1;
        continue;
      }
    }
    if (resp->status == 401 && own && owns(resp->url)) {
      if (attempt > 0)
        return m_auth.rejected(*resp, scope, "registry " + m_options.host);
      if (auto st = m_auth.on_unauthorized(*resp, scope, authorization_of(r)); !st)
        return st.error();
      continue;
    }
    return resp;
  }
}

bool Registry::answers_as_https_server() const {
  // A HEAD's 400 has no body to tell why: ask /v2/ over plain HTTP once, and read its answer.
  http::Request probe;
  probe.method = "GET";
  probe.url = "http://" + http::authority_of(base_url()) + "/v2/";
  probe.proxy = m_options.proxy;
  probe.connect_to = m_connect_to;
  auto resp = m_client.send(probe);
  return resp && resp->status == 400 && resp->body.find("HTTP request to an HTTPS server") != std::string::npos;
}

Result<Limiter::Slot> Registry::slot(Limiter::Work work) const {
  if (!m_limiter)
    return Limiter::Slot();
  auto held = m_limiter->acquire(work);
  if (!held)
    return http::make_error(http::ErrorKind::cancelled, "registry " + m_options.host + ": stopped before its turn");
  return std::move(*held);
}

std::optional<Limiter::Slot> Registry::try_check_slot() const {
  if (!m_limiter)
    return Limiter::Slot();
  return m_limiter->try_acquire(Limiter::Work::check);
}

void Registry::learn(Limiter::Slot& slot, const Result<http::Response>& response) {
  if (response)
    slot.status(response->status);
  else if (response.error().kind == http::ErrorKind::timeout)
    slot.outcome(Limiter::Outcome::congested);
}

Result<http::Response> Registry::send_direct(const http::Request& request) {
  auto held = slot();
  if (!held)
    return held.error();
  return m_client.send(request);
}

void Registry::note_quota(const http::Response& response) {
  auto value = response.header("ratelimit-remaining");
  if (value.empty() || !std::isdigit(static_cast<unsigned char>(value[0])))
    return;
  long left = std::atol(value.c_str());
  m_quota_left = left;
  std::string window;
  if (auto w = value.find("w="); w != std::string::npos)
    window = " of " + value.substr(w + 2) + " s";
  if (left < 10 && !m_quota_warned.exchange(true))
    m_log->warn("{}: only {} requests left in the registry's rate-limit window{} (ratelimit-remaining)", m_options.host,
                left, window);
}

http::Response Registry::explain(const http::Request& head, const http::Response& response, const std::string& scope) {
  if (head.method != "HEAD" || !response.body.empty())
    return response;
  // A HEAD error has no body to explain it: ask again with GET (bodies are small for errors).
  http::Request get = head;
  get.method = "GET";
  auto again = send(get, scope);
  return again && again->status == response.status ? *again : response;
}

http::Status Registry::each_page(std::string url, const std::string& scope, const std::string& what,
                                const std::function<void(const nlohmann::json&)>& on_page) {
  std::set<std::string> seen; // a registry that links back to a page it gave is looping
  for (int page = 0; !url.empty(); ++page) {
    if (page > max_pages)
      return http::make_error(http::ErrorKind::invalid, what + ": pagination does not end (over " +
                                                            std::to_string(max_pages) + " pages)");
    if (!seen.insert(url).second)
      return http::make_error(http::ErrorKind::invalid, what + ": the registry's pagination loops (its Link header "
                                                            "names a page it already gave: " +
                                                            util::escape_control(http::redact_url(url)) + ")");
    http::Request r = request("GET", "");
    r.url = url;
    auto resp = send(r, scope);
    if (!resp)
      return resp.error().context(what);
    if (resp->status != 200)
      return registry_error(what, *resp);
    try {
      on_page(util::parse_json(resp->body));
    } catch (const nlohmann::json::exception& e) {
      return http::make_error(http::ErrorKind::invalid, what + ": the answer is not JSON (" + util::parse_error_text(e) + ")");
    }
    auto next = http::next_link(resp->header("link"));
    url = next.empty() ? std::string() : resolve(url, next);
    // The next page is the registry's own: a Link to another host would have this machine fetch,
    // and hand back as data, whatever that host serves (an internal service the source cannot reach).
    if (!url.empty() && !owns(url))
      return http::make_error(http::ErrorKind::invalid, what + ": the registry's next page is on another host (" +
                                                            util::escape_control(http::redact_url(url)) + "): not followed");
  }
  return {};
}

Result<std::vector<std::string>> Registry::list_paginated(std::string url, const std::string& scope,
                                                          const char* field, const std::string& what) {
  std::vector<std::string> items;
  bool too_many = false;
  auto st = each_page(std::move(url), scope, what, [&](const nlohmann::json& j) {
    if (j.is_object() && j.contains(field) && j[field].is_array())
      for (const auto& t : j[field])
        if (t.is_string() && !(too_many = too_many || items.size() >= max_listed))
          items.push_back(t.get<std::string>());
  });
  if (!st)
    return st.error();
  if (too_many)
    return http::make_error(http::ErrorKind::invalid, what + ": more than " + std::to_string(max_listed) +
                                                          " entries: not held in memory; name a narrower repository or namespace");
  return items;
}

Result<std::optional<std::vector<Referrer>>> Registry::list_referrers(const std::string& repository,
                                                                      const std::string& digest) {
  if (auto bad = bad_name(m_options.host, repository, digest, true))
    return *bad;
  // The first request is a probe the others wait for: seven workers starting together would
  // otherwise send seven to a registry without the API. Should it decide nothing (a 5xx, a
  // timeout), the others go ahead in parallel as usual.
  bool probe = false;
  {
    std::unique_lock lock(m_probe_mutex);
    m_probe_cv.wait(lock, [&] { return !m_probing; });
    if (m_referrers_api.load() == 0)
      return std::optional<std::vector<Referrer>>();
    if (m_referrers_api.load() == -1 && !m_probed)
      probe = m_probing = m_probed = true;
  }
  auto probed = std::unique_ptr<Registry, void (*)(Registry*)>(probe ? this : nullptr, [](Registry* r) {
    {
      std::lock_guard lock(r->m_probe_mutex);
      r->m_probing = false;
    }
    r->m_probe_cv.notify_all();
  });
  std::string what = "listing referrers of " + m_options.host + "/" + repository + "@" + digest;
  std::vector<Referrer> found;
  bool malformed = false;
  int pages = 0;
  auto st = each_page(base_url() + repository + "/referrers/" + digest, pull_scope(repository), what,
                      [&](const nlohmann::json& j) {
                        ++pages;
                        if (!j.is_object() || !j.contains("manifests") || !j["manifests"].is_array()) {
                          malformed = true;
                          return;
                        }
                        for (const auto& d : j["manifests"]) {
                          Referrer r;
                          if (!d.is_object() || !d.contains("digest") || !d["digest"].is_string() ||
                              !valid_digest(d["digest"].get<std::string>())) {
                            malformed = true;
                            continue;
                          }
                          r.digest = d["digest"].get<std::string>();
                          r.media_type = util::string_field(d, "mediaType");
                          r.artifact_type = util::string_field(d, "artifactType");
                          if (!valid_media_type(r.media_type) ||
                              (!r.artifact_type.empty() && !valid_media_type(r.artifact_type))) {
                            malformed = true;
                            continue;
                          }
                          r.descriptor = d.dump();
                          if (found.size() < max_listed)
                            found.push_back(std::move(r));
                          else
                            malformed = true; // more referrers than any image has: refused below
                        }
                      });
  if (!st) {
    // A registry without the API answers its first request with 404 (often a plain "page not found"),
    // some with 400, 405 or 501; one that has it answers 200 with an empty index even for a digest
    // nobody refers to. Later pages failing are errors.
    const long status = st.error().status;
    if (pages == 0 && (status == 400 || status == 404 || status == 405 || status == 501)) {
      m_referrers_api = 0;
      return std::optional<std::vector<Referrer>>();
    }
    return st.error();
  }
  if (malformed)
    return http::make_error(http::ErrorKind::invalid, what + ": the answer is not an image index of descriptors");
  m_referrers_api = 1;
  return std::optional<std::vector<Referrer>>(std::move(found));
}


Result<std::vector<std::string>> Registry::list_tags(const std::string& repository) {
  if (auto bad = bad_name(m_options.host, repository))
    return *bad;
  return list_paginated(base_url() + repository + "/tags/list?n=" + m_options.page_size, pull_scope(repository), "tags",
                        "listing tags of " + m_options.host + "/" + repository);
}

Result<std::vector<std::string>> Registry::list_repositories(const std::string& ns) {
  auto repos = list_catalog();
  if (repos || (repos.error().kind != http::ErrorKind::unauthorized && repos.error().kind != http::ErrorKind::not_found))
    return repos;
  const std::string project = ns.substr(0, ns.find('/'));
  auto harbor = list_harbor_project(project);
  if (!harbor)
    return http::make_error(
        repos.error().kind,
        "registry " + m_options.host + " does not let these credentials list its catalog (_catalog: HTTP " +
            std::to_string(repos.error().status) + "); " +
            (harbor.error().kind == http::ErrorKind::unsupported
                 ? harbor.error().message
                 : "listing project \"" + project + "\" through the Harbor API (/api/v2.0) did not work either: " +
                       harbor.error().message) +
            "; name the repositories one by one",
        repos.error().status);
  m_log->info("{}: the catalog is refused; project {} listed through the Harbor API: {} repositories", m_options.host,
              project, harbor->size());
  return harbor;
}

Result<std::vector<std::string>> Registry::list_catalog() {
  auto repos = list_paginated(base_url() + "_catalog?n=" + m_options.page_size, "registry:catalog:*", "repositories",
                              "listing the catalog of " + m_options.host);
  if (!repos && (repos.error().status == 401 || repos.error().status == 403 || repos.error().status == 404 ||
                 repos.error().kind == http::ErrorKind::unauthorized || repos.error().kind == http::ErrorKind::not_found))
    return http::make_error(repos.error().kind,
                            "registry " + m_options.host + " does not let these credentials list its catalog (_catalog): " +
                                repos.error().message + "; name the repositories one by one",
                            repos.error().status);
  return repos;
}

Result<std::vector<std::string>> Registry::list_harbor_project(const std::string& project) {
  const std::string what = "listing Harbor project " + project + " on " + m_options.host;
  std::string root = base_url();
  root.resize(root.size() - 3); // "http(s)://host/"
  // Credentials go to the API only once the host has shown it is a Harbor (an anonymous ping): a
  // registry whose tokens come from elsewhere never sees a password on a path of our guessing.
  http::Request ping = request("GET", "");
  ping.url = root + "api/v2.0/ping";
  auto pong = send_direct(ping);
  if (!pong)
    return pong.error().context(what);
  if (pong->status != 200)
    return http::make_error(http::ErrorKind::unsupported,
                            "it is not a Harbor either (GET /api/v2.0/ping: HTTP " + std::to_string(pong->status) + ")",
                            pong->status);
  std::string url = root + "api/v2.0/projects/" + http::url_encode(project) + "/repositories?page=1&page_size=100";
  std::vector<std::string> names;
  std::set<std::string> seen;
  for (int page = 0; !url.empty(); ++page) {
    if (page > max_pages)
      return http::make_error(http::ErrorKind::invalid, what + ": pagination does not end (over " +
                                                            std::to_string(max_pages) + " pages)");
    if (!seen.insert(url).second)
      return http::make_error(http::ErrorKind::invalid, what + ": Harbor's pagination loops (its Link header names a "
                                                            "page it already gave)");
    if (!owns(url))
      return http::make_error(http::ErrorKind::invalid, what + ": the next page is on another host (" +
                                                            http::redact_url(url) + "); not following it with credentials");
    http::Request r = request("GET", "");
    r.url = url;
    r.headers.emplace_back("Accept", "application/json");
    r.headers.emplace_back("X-Is-Resource-Name", "true"); // a project named "123" is a name, not an id
    const auto& c = m_options.credentials;
    if (!c.anonymous() && !c.is_identity_token())
      r.headers.emplace_back("Authorization", c.basic_header());
    auto resp = send_direct(r);
    if (!resp)
      return resp.error().context(what);
    if (resp->status != 200)
      return registry_error(what, *resp);
    std::size_t before = names.size();
    try {
      auto j = util::parse_json(resp->body);
      if (!j.is_array())
        return http::make_error(http::ErrorKind::invalid, what + ": the answer is not a list of repositories");
      for (const auto& repo : j)
        if (repo.is_object() && repo.contains("name") && repo["name"].is_string())
          if (names.size() < max_listed)
            names.push_back(repo["name"].get<std::string>());
    } catch (const nlohmann::json::exception& e) {
      return http::make_error(http::ErrorKind::invalid, what + ": the answer is not JSON (" + util::parse_error_text(e) + ")");
    }
    auto next = http::next_link(resp->header("link"));
    url = next.empty() || names.size() == before ? std::string() : resolve(url, next);
  }
  return names;
}

http::Request Registry::manifest_request(const std::string& method, const std::string& repository,
                                         const std::string& reference) const {
  auto r = request(method, repository + "/manifests/" + reference);
  r.headers.emplace_back("Accept", media::accept_header());
  r.follow_redirects = true;
  return r;
}

std::string Registry::manifest_name(const std::string& repository, const std::string& reference) const {
  return m_options.host + "/" + repository + (is_digest_reference(reference) ? "@" : ":") + reference;
}

Result<Manifest> Registry::get_manifest(const std::string& repository, const std::string& reference) {
  if (auto bad = bad_name(m_options.host, repository, reference))
    return *bad;
  std::string what = "fetching manifest " + manifest_name(repository, reference);
  auto resp = send(manifest_request("GET", repository, reference), pull_scope(repository));
  if (!resp)
    return resp.error().context(what);
  if (resp->status != 200)
    return registry_error(what, *resp);
  Manifest m;
  m.bytes = std::move(resp->body);
  m.digest = sha256_digest(m.bytes);
  m.media_type = strip_params(resp->header("content-type"));
  if (m.media_type.empty() || m.media_type == "application/json" || m.media_type == "text/plain") {
    try {
      auto j = util::parse_json(m.bytes);
      if (j.is_object() && j.contains("mediaType") && j["mediaType"].is_string())
        m.media_type = j["mediaType"].get<std::string>();
    } catch (const nlohmann::json::exception&) {
    }
  }
  if (!valid_media_type(m.media_type))
    return http::make_error(http::ErrorKind::invalid,
                            what + ": the registry gives no media type that is one (RFC 6838): \"" +
                                util::escape_control(m.media_type.substr(0, 100)) + "\"");
  // Every digest is checked in its own algorithm (sha512 too): what we store is what was named.
  if (is_digest_reference(reference))
    if (auto got = digest_like(reference, m.bytes); got != reference)
      return http::make_error(http::ErrorKind::digest_mismatch, what + ": content hashes to " + got);
  auto header_digest = resp->header("docker-content-digest");
  if (valid_digest(header_digest))
    if (auto got = digest_like(header_digest, m.bytes); got != header_digest)
      return http::make_error(http::ErrorKind::digest_mismatch,
                              what + ": registry announced " + header_digest + " but the content hashes to " + got);
  return m;
}

namespace {
/// What the headers of a manifest HEAD say (the digest may be missing: check it).
ManifestHead head_of(const http::Response& response) {
  ManifestHead head;
  head.digest = response.header("docker-content-digest");
  head.media_type = strip_params(response.header("content-type"));
  if (!valid_media_type(head.media_type))
    head.media_type.clear(); // unknown: whoever needs it reads the manifest, which is checked
  auto length = response.header("content-length");
  head.size = length.empty() ? 0 : std::atoll(length.c_str());
  return head;
}
} // namespace

std::optional<http::Request> Registry::head_request(const std::string& repository, const std::string& reference,
                                                    const std::string& expected) {
  if (m_limiter && m_limiter->limited())
    return std::nullopt; // caps count every request: these go one by one through send()
  if (bad_name(m_options.host, repository, reference))
    return std::nullopt; // head_manifest says why
  auto r = manifest_request("HEAD", repository, reference);
  if (!owns(r.url))
    return std::nullopt;
  // Only a tag's HEAD is made conditional. distribution compares a digest reference with
  // If-None-Match before it looks the manifest up: a 304 would then say nothing about whether the
  // repository has it.
  if (valid_digest(expected) && !valid_digest(reference))
    r.headers.emplace_back("If-None-Match", "\"" + expected + "\"");
  // The caller's thread drives many requests: it must not wait on a token server. Without a token
  // in hand the image's own worker asks, and fetches one.
  if (!m_auth.authorize_known(r, pull_scope(repository)))
    return std::nullopt;
  return r;
}

bool Registry::fetch_pull_token(const std::string& repository) {
  http::Request probe;
  m_auth.authorize(probe, pull_scope(repository));
  return !authorization_of(probe).empty();
}

HeadAnswer Registry::read_head(const http::Request& request, const Result<http::Response>& response) {
  HeadAnswer answer;
  auto what = [&] { return "checking manifest " + http::redact_url(request.url); }; // for errors only
  if (!response) {
    // The transport's message names the request (method and URL) already.
    http::Error e = response.error().context("registry " + m_options.host).context("checking manifest");
    if (e.retryable())
      answer.failed = std::move(e);
    return answer;
  }
  note_quota(*response);
  if (response->status == 404) {
    answer.head = std::optional<ManifestHead>();
  } else if (response->status == 304) {
    // Only an answer to our If-None-Match: the tag is at the digest we named.
    std::string expected = request.header("If-None-Match");
    if (expected.size() > 2 && expected.front() == '"' && expected.back() == '"')
      expected = expected.substr(1, expected.size() - 2);
    if (valid_digest(expected))
      answer.head = std::optional<ManifestHead>(ManifestHead{expected, {}, 0});
  } else if (response->status == 200) {
    ManifestHead head = head_of(*response);
    if (valid_digest(head.digest))
      answer.head = std::optional<ManifestHead>(head);
  } else if (response->status != 401 && !quota_spent(*response)) {
    http::Error e = registry_error(what(), *response);
    if (e.retryable())
      answer.failed = std::move(e);
  }
  return answer;
}

Result<std::optional<ManifestHead>> Registry::head_manifest(const std::string& repository, const std::string& reference) {
  if (auto bad = bad_name(m_options.host, repository, reference))
    return *bad;
  std::string what = "checking manifest " + manifest_name(repository, reference);
  auto r = manifest_request("HEAD", repository, reference);
  auto resp = send(r, pull_scope(repository));
  if (!resp)
    return resp.error().context(what);
  if (resp->status == 404)
    return std::optional<ManifestHead>();
  if (resp->status != 200)
    return registry_error(what, explain(r, *resp, pull_scope(repository)));
  ManifestHead head = head_of(*resp);
  if (!valid_digest(head.digest)) {
    // Some registries omit the digest on HEAD: fall back to the bytes.
    auto m = get_manifest(repository, reference);
    if (!m)
      return m.error();
    head.digest = m->digest;
    head.media_type = m->media_type;
    head.size = static_cast<std::int64_t>(m->bytes.size());
  }
  return std::optional<ManifestHead>(head);
}

http::Status Registry::put_manifest(const std::string& repository, const std::string& reference, const Manifest& manifest) {
  if (auto bad = bad_name(m_options.host, repository, reference))
    return *bad;
  if (!valid_media_type(manifest.media_type))
    return http::make_error(http::ErrorKind::invalid, "registry " + m_options.host + ": refusing to push a manifest "
                                                      "whose media type is not one (RFC 6838)");
  std::string what = "pushing manifest " + manifest_name(repository, reference);
  auto r = request("PUT", repository + "/manifests/" + reference);
  r.headers.emplace_back("Content-Type", manifest.media_type);
  r.body = manifest.bytes;
  auto resp = send(r, push_scope(repository));
  if (!resp)
    return resp.error().context(what);
  if (resp->status != 201 && resp->status != 200)
    return registry_error(what, *resp);
  auto header_digest = resp->header("docker-content-digest");
  if (header_digest.rfind("sha256:", 0) == 0 && header_digest != manifest.digest)
    return http::make_error(http::ErrorKind::digest_mismatch,
                            what + ": registry stored it as " + header_digest + ", expected " + manifest.digest);
  return {};
}

Result<bool> Registry::blob_exists(const std::string& repository, const std::string& digest) {
  if (auto bad = bad_name(m_options.host, repository, digest, true))
    return *bad;
  std::string what = "checking blob " + digest + " in " + m_options.host + "/" + repository;
  auto r = request("HEAD", repository + "/blobs/" + digest);
  r.follow_redirects = true;
  auto resp = send(r, push_scope(repository));
  if (!resp)
    return resp.error().context(what);
  if (resp->status == 200)
    return true;
  if (resp->status == 404)
    return false;
  return registry_error(what, explain(r, *resp, push_scope(repository)));
}

Result<bool> Registry::mount_blob(const std::string& repository, const std::string& digest, const std::string& from) {
  if (auto bad = bad_name(m_options.host, repository, digest, true))
    return *bad;
  if (auto bad = bad_name(m_options.host, from))
    return *bad;
  std::string what = "mounting blob " + digest + " from " + from + " into " + m_options.host + "/" + repository;
  auto r = request("POST", repository + "/blobs/uploads/?mount=" + http::url_encode(digest) + "&from=" + http::url_encode(from));
  auto resp = send(r, push_scope(repository) + " " + pull_scope(from));
  if (!resp)
    return resp.error().context(what);
  if (resp->status == 201)
    return true;
  if (resp->status == 202) {
    // The registry opened an upload instead: close it, the caller uploads normally.
    auto location = resp->header("location");
    if (!location.empty()) {
      http::Request del = request("DELETE", "");
      del.url = resolve(r.url, location);
      (void)send(del, push_scope(repository));
    }
    return false;
  }
  return registry_error(what, *resp);
}

Result<std::string> Registry::start_upload(const std::string& repository, const std::string& scope) {
  if (auto bad = bad_name(m_options.host, repository))
    return *bad;
  std::string what = "starting upload to " + m_options.host + "/" + repository;
  auto r = request("POST", repository + "/blobs/uploads/");
  auto resp = send(r, scope);
  if (!resp)
    return resp.error().context(what);
  if (resp->status != 202)
    return registry_error(what, *resp);
  auto location = resp->header("location");
  if (location.empty())
    return http::make_error(http::ErrorKind::http_status, what + ": 202 without a Location header", 202);
  if (!resp->header("oci-chunk-min-length").empty() && !m_chunked.exchange(true))
    m_log->debug("registry {} asks for chunked uploads (OCI-Chunk-Min-Length)", m_options.host);
  return resolve(r.url, location);
}

Result<std::uint64_t> Registry::copy_blob_from(ImageStore& source, const std::string& source_repository,
                                               const std::string& repository, const Descriptor& blob,
                                               const ByteCounter& on_bytes) {
  if (auto bad = bad_name(m_options.host, repository, blob.digest, true))
    return *bad;
  if (auto bad = bad_name(source.host(), source_repository.empty() ? "layout" : source_repository))
    return *bad;
  if (auto* registry = dynamic_cast<Registry*>(&source))
    return copy_from_registry(*registry, source_repository, repository, blob, on_bytes);
  if (auto path = source.blob_file(blob.digest))
    return upload_file(*path, repository, blob, on_bytes);
  return http::make_error(http::ErrorKind::not_found, "blob " + blob.digest + " is not in " + source.host());
}

http::ResumeHook Registry::resume_blob(const std::string& what, std::uint64_t size, const std::string& scope) {
  return [this, what, size, scope](http::Request& again, std::uint64_t offset, const http::Error& why) -> http::Status {
    m_log->warn("{}: {}; resuming the download at byte {} of {}", what, why.message, offset, size);
    ++m_resumed;
    if (owns(again.url)) { // a token that is still good: the broken transfer may have outlived its own
      again.headers.erase(std::remove_if(again.headers.begin(), again.headers.end(),
                                         [](const auto& h) { return h.first == "Authorization"; }),
                          again.headers.end());
      m_auth.authorize(again, scope);
    }
    return {};
  };
}

Result<std::uint64_t> Registry::read_blob(const std::string& repository, const Descriptor& blob,
                                          const http::ChunkObserver& sink) {
  if (auto bad = bad_name(m_options.host, repository, blob.digest, true))
    return *bad;
  std::string what = "downloading blob " + blob.digest + " from " + m_options.host + "/" + repository;
  auto r = request("GET", repository + "/blobs/" + blob.digest);
  r.follow_redirects = true;
  std::uint64_t bytes = 0;
  const std::string scope = pull_scope(repository);
  auto resp = send(
      r, scope,
      [&](std::string_view chunk) -> http::Status {
        bytes += chunk.size();
        return sink(chunk);
      },
      resume_blob(what, static_cast<std::uint64_t>(blob.size), scope));
  if (!resp)
    return resp.error().context(what);
  if (resp->status != 200 && resp->status != 206) // 206: the rest of a resumed download
    return registry_error(what, *resp);
  return bytes;
}

Result<std::uint64_t> Registry::upload_file(const std::string& path, const std::string& repository,
                                            const Descriptor& blob, const ByteCounter& on_bytes) {
  std::string what = "uploading blob " + blob.digest + " from " + path + " to " + m_options.host + "/" + repository;
  const std::string scope = push_scope(repository);
  for (int attempt = 0;; ++attempt) {
    auto location = start_upload(repository, scope);
    if (!location)
      return location.error().context(what);
    std::string why;
    const int fd = util::open_regular_file(path, why); // not a symlink, FIFO or device of a tampered layout
    std::FILE* file = fd >= 0 ? ::fdopen(fd, "rb") : nullptr;
    if (!file) {
      if (fd >= 0)
        ::close(fd);
      return http::make_error(http::ErrorKind::invalid, what + ": cannot open the file: " + why);
    }
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> closer(file, &std::fclose);
    // Monolithic PUT, or one PATCH then the closing PUT for registries that want chunks.
    const bool chunked = m_chunked.load();
    http::Request put = request(chunked ? "PATCH" : "PUT", "");
    put.url = chunked ? *location : with_query(*location, "digest=" + http::url_encode(blob.digest));
    put.upload_size = static_cast<std::uint64_t>(blob.size);
    put.headers.emplace_back("Content-Type", "application/octet-stream");
    if (chunked && blob.size > 0)
      put.headers.emplace_back("Content-Range", "0-" + std::to_string(blob.size - 1));
    if (owns(put.url))
      m_auth.authorize(put, scope);
    auto digester = Digester::for_digest(blob.digest);
    if (!digester)
      return digester.error().context(what);
    Digester& hash = *digester;
    std::uint64_t sent = 0;
    bool checked = false;
    const std::uint64_t size = put.upload_size.value();
    auto held = slot(Limiter::Work::transfer);
    if (!held)
      return held.error().context(what);
    auto resp = m_client.upload(put, [&](char* buffer, std::size_t max) -> Result<std::size_t> {
      if (checked)
        return std::size_t{0};
      std::size_t n = std::fread(buffer, 1, static_cast<std::size_t>(std::min<std::uint64_t>(max, size - sent)), file);
      if (n == 0 && std::ferror(file))
        return http::make_error(http::ErrorKind::invalid, "read error");
      sent += n;
      hash.update(std::string_view(buffer, n));
      if (on_bytes && n > 0)
        on_bytes(n);
      if (sent == size || n == 0) {
        // The last bytes are checked before the registry gets them: a bad file is never committed.
        checked = true;
        auto got = hash.finish();
        if (sent != size || got != blob.digest)
          return http::make_error(http::ErrorKind::digest_mismatch, "the file hashes to " + got + " (" +
                                                                        std::to_string(sent) + " bytes), not " +
                                                                        blob.digest + "; upload aborted");
      }
      return n;
    });
    learn(*held, resp);
    if (!resp)
      return resp.error().context(what);
    if (resp->status == 401 && owns(put.url)) {
      if (attempt >= 2)
        return m_auth.rejected(*resp, scope, what);
      if (auto st = m_auth.on_unauthorized(*resp, scope, authorization_of(put)); !st)
        return st.error().context(what);
      continue;
    }
    held = Limiter::Slot();
    if (chunked && resp->status == 202) {
      if (auto st = finish_chunked(put.url, *resp, blob.digest, scope, what); !st)
        return st.error();
      return sent;
    }
    if (resp->status != 201)
      return registry_error(what, *resp);
    return sent;
  }
}

http::Status Registry::finish_chunked(const std::string& patch_url, const http::Response& patched,
                                      const std::string& digest, const std::string& scope, const std::string& what) {
  auto next = patched.header("location");
  http::Request finish = request("PUT", "");
  finish.url = with_query(next.empty() ? patch_url : resolve(patch_url, next), "digest=" + http::url_encode(digest));
  auto resp = send(finish, scope);
  if (!resp)
    return resp.error().context(what);
  if (resp->status != 201)
    return registry_error(what + ": completing upload", *resp);
  return {};
}

Result<std::uint64_t> Registry::copy_from_registry(Registry& source, const std::string& source_repository,
                                                   const std::string& repository, const Descriptor& blob,
                                                   const ByteCounter& on_bytes) {
  std::string what = "copying blob " + blob.digest + " from " + source.host() + "/" + source_repository + " to " +
                     m_options.host + "/" + repository;
  const std::string scope = push_scope(repository);
  const std::string source_scope = pull_scope(source_repository);
  const auto size = static_cast<std::uint64_t>(blob.size);
  for (int attempt = 0;; ++attempt) {
    auto location = start_upload(repository, scope);
    if (!location)
      return location.error().context(what);

    http::Request get = source.request("GET", source_repository + "/blobs/" + blob.digest);
    get.follow_redirects = true;
    source.m_auth.authorize(get, source_scope);

    http::Request put = request("PUT", "");
    put.upload_size = size;
    put.headers.emplace_back("Content-Type", "application/octet-stream");
    const bool chunked = m_chunked.load();
    if (chunked) {
      put.method = "PATCH";
      put.url = *location;
      if (size > 0)
        put.headers.emplace_back("Content-Range", "0-" + std::to_string(size - 1));
    } else {
      put.method = "PUT";
      put.url = with_query(*location, "digest=" + http::url_encode(blob.digest));
    }
    if (owns(put.url))
      m_auth.authorize(put, scope);

    auto digester = Digester::for_digest(blob.digest);
    if (!digester)
      return digester.error().context(what);
    Digester& hash = *digester;
    auto observe = [&](std::string_view chunk) -> http::Status {
      hash.update(chunk);
      if (on_bytes)
        on_bytes(chunk.size());
      return {};
    };
    auto complete = [&]() -> http::Status {
      auto got = hash.finish();
      if (got != blob.digest)
        return http::make_error(http::ErrorKind::digest_mismatch,
                                "source content hashes to " + got + ", not " + blob.digest + "; upload aborted");
      return {};
    };
    http::Result<http::PipeResult> result = make_error(http::ErrorKind::invalid, "");
    if (size == 0) {
      // Nothing to stream: check the empty digest and finish with an empty body.
      if (auto st = complete(); !st)
        return st.error().context(what);
      http::Request empty = put;
      empty.upload_size.reset();
      auto resp = m_client.send(empty);
      if (!resp)
        return resp.error().context(what);
      http::PipeResult pr;
      pr.download.status = 200;
      pr.upload = std::move(*resp);
      result = std::move(pr);
    } else {
      // A download that breaks goes on from where it stopped: the upload waits instead of starting over.
      auto held = acquire_both(source.m_limiter.get(), m_limiter.get());
      if (!held)
        return http::make_error(http::ErrorKind::cancelled, what + ": stopped before its turn");
      result = m_client.pipe(get, put, observe, complete, source.resume_blob(what, size, source_scope));
      if (result) {
        held->first.status(result->download.status);
        held->second.status(result->upload.status);
      } else if (result.error().kind == http::ErrorKind::timeout) {
        held->first.outcome(Limiter::Outcome::congested); // either end: both learn it
        held->second.outcome(Limiter::Outcome::congested);
      }
    }
    if (!result)
      return result.error().context(what);
    auto& pr = *result;
    if (pr.download.status == 401 && source.owns(pr.download.url)) {
      if (attempt >= 2)
        return source.m_auth.rejected(pr.download, source_scope, what);
      if (auto st = source.m_auth.on_unauthorized(pr.download, source_scope, authorization_of(get)); !st)
        return st.error().context(what);
      continue;
    }
    if (pr.download.status < 200 || pr.download.status >= 300)
      return registry_error(what + ": downloading", pr.download);
    if (pr.upload.status == 401 && owns(put.url)) {
      if (attempt >= 2)
        return m_auth.rejected(pr.upload, scope, what);
      if (auto st = m_auth.on_unauthorized(pr.upload, scope, authorization_of(put)); !st)
        return st.error().context(what);
      continue;
    }
    if (chunked && pr.upload.status == 202) {
      if (auto st = finish_chunked(put.url, pr.upload, blob.digest, scope, what); !st)
        return st.error();
      return pr.bytes;
    }
    if (pr.upload.status != 201)
      return registry_error(what + ": uploading", pr.upload);
    return pr.bytes;
  }
}

} // namespace registry
