// Why this file is over 600 lines: it is the one place that touches libcurl. Easy-handle set-up,
// the callbacks, request validation, buffered/streamed/multi transfers, resume and the
// download-to-upload pipe share the Transfer state and the handle pool; split apart, each piece
// would need that state exported from this file, which is what keeps libcurl out of the rest of
// the code. Sections, in order: Transfer and callbacks; TLS roots; request validation; Impl
// (handle pool, set-up, conclude); stream (many buffered requests on one multi handle); download
// and resume; upload; pipe.
#include "http/client.hpp"

#include "http/resume.hpp"
#include "http/url.hpp"
#include "util/text.hpp"

#include <curl/curl.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>

namespace http {

namespace {

struct EasyDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
using Easy = std::unique_ptr<CURL, EasyDeleter>;
struct MultiDeleter {
  void operator()(CURLM* m) const { curl_multi_cleanup(m); }
};
using Multi = std::unique_ptr<CURLM, MultiDeleter>;
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

constexpr std::size_t error_body_limit = 64 * 1024;
constexpr long transfer_buffer = 128 * 1024;


bool is_redirect(long status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

bool is_success(long status) { return status >= 200 && status < 300; }

/// State one transfer shares with its libcurl callbacks.
struct Transfer {
  Response response;
  bool headers_done = false;
  std::size_t body_limit = 0;
  bool body_too_large = false;
  std::array<char, CURL_ERROR_SIZE> errbuf{};
  const util::CancelToken* cancel = nullptr;
  RateLimit* rate = nullptr;
  curl_off_t downloaded = 0; ///< bytes already taken from `rate`
  const std::function<void(const std::string&)>* trace = nullptr;
  std::chrono::steady_clock::time_point started;
  // Stall detection (Options::low_speed_time): no byte either way for that long ends the transfer.
  // libcurl's own low-speed check averages over a window of several seconds, so a transfer that
  // stops after a burst would be noticed only seconds later than asked.
  std::chrono::steady_clock::duration stall_after{};
  std::chrono::steady_clock::time_point moved_at;
  curl_off_t moved = 0;  ///< bytes down + up at moved_at
  bool waiting = false;  ///< paused on purpose by pipe(): waiting is not stalling
  bool stalled = false;
  Slist header_list;
  Slist connect_to;
  Slist resolve;
  std::string rewritten_url;
};

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
    line.remove_suffix(1);
  if (line.rfind("HTTP/", 0) == 0) {
    // A new status line (after 1xx or a redirect) starts a new header block.
    t->response.headers.clear();
    t->headers_done = false;
    auto sp = line.find(' ');
    t->response.status = sp == std::string_view::npos ? 0 : std::atol(std::string(line.substr(sp + 1, 3)).c_str());
  } else if (line.empty()) {
    if (t->response.status >= 200)
      t->headers_done = true;
  } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
    auto value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
      value.remove_suffix(1);
    t->response.headers.emplace_back(to_lower(line.substr(0, colon)), std::string(value));
  }
  return size * n;
}

std::size_t on_buffered_body(char* data, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::size_t len = size * n;
  if (t->response.body.size() + len > t->body_limit) {
    t->body_too_large = true;
    return 0;
  }
  t->response.body.append(data, len);
  return len;
}

int on_progress(void* user, curl_off_t, curl_off_t dlnow, curl_off_t, curl_off_t ulnow) {
  auto* t = static_cast<Transfer*>(user);
  if (t->cancel && t->cancel->aborted())
    return 1;
  if (t->rate) {
    if (dlnow > t->downloaded)
      t->rate->take(static_cast<std::size_t>(dlnow - t->downloaded), t->cancel);
    t->downloaded = dlnow; // also when it restarts from 0 (a redirect's new response)
  }
  const auto now = std::chrono::steady_clock::now();
  if (dlnow + ulnow != t->moved || t->waiting) {
    t->moved = dlnow + ulnow;
    t->moved_at = now;
    return 0;
  }
  if (t->stall_after.count() > 0 && now - t->moved_at >= t->stall_after) {
    t->stalled = true;
    return 1;
  }
  return 0;
}

/// Trusted roots per TLS configuration, parsed once per process. Left to itself, libcurl builds a
/// new X509_STORE for every new connection and parses the whole system bundle into it: with
/// OpenSSL 3 that is about 25 ms of CPU per connection, more than all the rest of a re-sync over TLS.
class TrustStores {
public:
  TrustStores() {
    // The roots libcurl would have used: its built-in bundle and directory (Debian: the system's).
    if (CURL* h = curl_easy_init()) {
      char* path = nullptr;
      if (curl_easy_getinfo(h, CURLINFO_CAINFO, &path) == CURLE_OK && path)
        m_bundle = path;
      path = nullptr;
      if (curl_easy_getinfo(h, CURLINFO_CAPATH, &path) == CURLE_OK && path)
        m_dir = path;
      curl_easy_cleanup(h);
    }
  }
  ~TrustStores() {
    for (auto& [key, store] : m_stores)
      X509_STORE_free(store);
  }
  TrustStores(const TrustStores&) = delete;
  TrustStores& operator=(const TrustStores&) = delete;

  /// The store for `tls` (shared: SSL_CTX_set1_cert_store takes a reference); nullptr when its
  /// roots cannot be read.
  X509_STORE* get(const Tls& tls) {
    std::string key = tls.ca_file + '\n' + tls.ca_pem;
    std::lock_guard lock(m_mutex);
    auto [it, added] = m_stores.emplace(std::move(key), nullptr);
    if (added)
      it->second = build(tls);
    return it->second;
  }

private:
  X509_STORE* build(const Tls& tls) const {
    X509_STORE* store = X509_STORE_new();
    if (!store)
      return nullptr;
    bool ok = true;
    if (!tls.ca_pem.empty()) {
      // In-memory CAs (kubeconfig's certificate-authority-data) are the only trusted roots.
      BIO* bio = BIO_new_mem_buf(tls.ca_pem.data(), static_cast<int>(tls.ca_pem.size()));
      STACK_OF(X509_INFO)* infos = bio ? PEM_X509_INFO_read_bio(bio, nullptr, nullptr, nullptr) : nullptr;
      int added = 0;
      for (int i = 0; infos && i < sk_X509_INFO_num(infos); ++i)
        if (X509_INFO* info = sk_X509_INFO_value(infos, i); info->x509 && X509_STORE_add_cert(store, info->x509) == 1)
          ++added;
      sk_X509_INFO_pop_free(infos, X509_INFO_free);
      BIO_free(bio);
      ok = added > 0;
    } else {
      // The system's roots, then the registry's own CA file on top of them.
      bool system = !m_bundle.empty() && X509_STORE_load_file(store, m_bundle.c_str()) == 1;
      if (!m_dir.empty())
        system = X509_STORE_load_path(store, m_dir.c_str()) == 1 || system;
      if (!tls.ca_file.empty())
        ok = X509_STORE_load_file(store, tls.ca_file.c_str()) == 1;
      else
        ok = system;
    }
    if (!ok) {
      X509_STORE_free(store);
      return nullptr;
    }
    return store;
  }

  std::string m_bundle;
  std::string m_dir;
  std::mutex m_mutex;
  std::map<std::string, X509_STORE*> m_stores;
};

CURLcode on_ssl_ctx(CURL*, void* ssl_ctx, void* user) {
  auto* store = static_cast<X509_STORE*>(user);
  if (!store)
    return CURLE_SSL_CACERT_BADFILE; // as libcurl says of a CA file it cannot read
  SSL_CTX_set1_cert_store(static_cast<SSL_CTX*>(ssl_ctx), store);
  return CURLE_OK;
}

/// A blob's body: HTTP/1.1, also over TLS where libcurl would choose HTTP/2. Streamed through
/// HTTP/2 (libcurl 7.88, nghttp2), every 16 KiB DATA frame is answered with a WINDOW_UPDATE:
/// 6 x 40 MB between TLS registries took 97,000 recv and 40,000 poll calls and 2.0 s of CPU,
/// against 32,000, 18,000 and 0.45 s over HTTP/1.1.
void bulk(CURL* h) { curl_easy_setopt(h, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1)); }

/// The request's body from memory (methods other than GET and HEAD).
void set_body(CURL* h, const Request& r) {
  if (r.method == "GET" || r.method == "HEAD")
    return;
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, r.body.data());
}

/// With -v: one line for a finished request (its status, time since it started and bytes each way).
void trace_done(CURL* h, CURLcode code, const Transfer& t, const Request& r) {
  if (!t.trace)
    return;
  long status = 0;
  curl_off_t down = 0, up = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(h, CURLINFO_SIZE_DOWNLOAD_T, &down);
  curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &up);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t.started);
  (*t.trace)(r.method + " " + redact_url(r.url) + " -> " +
             (code == CURLE_OK ? std::to_string(status) : std::string(curl_easy_strerror(code))) + " (" +
             std::to_string(ms.count()) + " ms, " + std::to_string(down) + " B down, " + std::to_string(up) + " B up)");
}

/// Applies everything common to buffered and streamed transfers.
void setup(CURL* h, const Request& r, Transfer& t, const Options& o, CURLSH* share, TrustStores& trust) {
  curl_easy_setopt(h, CURLOPT_URL, r.url.c_str());
  curl_easy_setopt(h, CURLOPT_SHARE, share);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(o.connect_timeout.count() * 1000));
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, o.low_speed_limit);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, static_cast<long>(o.low_speed_time.count()));
  curl_easy_setopt(h, CURLOPT_USERAGENT, o.user_agent.c_str());
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  // The shared connection cache is capped by each handle's MAXCONNECTS (default 5): with a dozen
  // threads sharing it, connections would be closed instead of reused.
  curl_easy_setopt(h, CURLOPT_MAXCONNECTS, 128L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, t.errbuf.data());
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
  t.cancel = o.cancel;
  t.rate = o.rate_limit;
  t.trace = o.trace ? &o.trace : nullptr;
  t.started = std::chrono::steady_clock::now();
  if (o.low_speed_limit > 0)
    t.stall_after = o.low_speed_time;
  t.moved_at = std::chrono::steady_clock::now();
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, &t);

  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, r.tls.verify ? 1L : 0L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, r.tls.verify ? 2L : 0L);
  Url target;
  if (r.tls.verify && parse_url(r.url, target) && target.scheme == "https") { // as parsed: "HTTPS:/" too
    // Our parsed-once roots instead of libcurl's per-connection parse of the same files.
    curl_easy_setopt(h, CURLOPT_CAINFO, nullptr);
    curl_easy_setopt(h, CURLOPT_CAPATH, nullptr);
    // libcurl's own cache would hand the first store it saw in a multi handle (one registry's) to
    // every later connection there, whatever their CA (its key is the CA file: none, here).
    curl_easy_setopt(h, CURLOPT_CA_CACHE_TIMEOUT, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
    curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, trust.get(r.tls));
  }
  if (!r.tls.cert_file.empty())
    curl_easy_setopt(h, CURLOPT_SSLCERT, r.tls.cert_file.c_str());
  if (!r.tls.key_file.empty())
    curl_easy_setopt(h, CURLOPT_SSLKEY, r.tls.key_file.c_str());
  if (!r.tls.cert_pem.empty()) {
    curl_blob blob{const_cast<char*>(r.tls.cert_pem.data()), r.tls.cert_pem.size(), CURL_BLOB_COPY};
    curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &blob);
    curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
  }
  if (!r.tls.key_pem.empty()) {
    curl_blob blob{const_cast<char*>(r.tls.key_pem.data()), r.tls.key_pem.size(), CURL_BLOB_COPY};
    curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &blob);
    curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
  }
  std::vector<std::string> connect_to = r.connect_to;
  if (!r.tls.server_name.empty()) {
    // Connect to the URL's host but present and verify server_name: rewrite the URL's host and
    // route the connection back with CONNECT_TO.
    Url u;
    if (parse_url(r.url, u)) {
      auto [host, port] = split_host_port(u.authority, u.scheme == "https" ? "443" : "80");
      t.rewritten_url = u.scheme + "://" + r.tls.server_name + ":" + port + u.path;
      curl_easy_setopt(h, CURLOPT_URL, t.rewritten_url.c_str());
      connect_to.push_back(r.tls.server_name + ":" + port + ":" + host + ":" + port);
    }
  }
  if (!connect_to.empty()) {
    curl_slist* list = nullptr;
    for (const auto& c : connect_to)
      list = curl_slist_append(list, c.c_str());
    t.connect_to.reset(list);
    curl_easy_setopt(h, CURLOPT_CONNECT_TO, list);
  }
  if (!o.resolve.empty()) {
    curl_slist* list = nullptr;
    for (const auto& c : o.resolve)
      list = curl_slist_append(list, c.c_str());
    t.resolve.reset(list);
    curl_easy_setopt(h, CURLOPT_RESOLVE, list);
  }
  if (!r.proxy.empty())
    curl_easy_setopt(h, CURLOPT_PROXY, r.proxy.c_str());

  curl_slist* list = nullptr;
  bool has_content_type = false;
  for (const auto& [name, value] : r.headers) {
    list = curl_slist_append(list, (name + ": " + value).c_str());
    has_content_type = has_content_type || to_lower(name) == "content-type";
  }
  list = curl_slist_append(list, "Expect:");
  if (!has_content_type)
    list = curl_slist_append(list, "Content-Type:");
  t.header_list.reset(list);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);

  if (r.method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (r.method != "GET") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r.method.c_str());
  }
}

Error curl_error(CURLcode code, const Transfer& t, const Request& r) {
  // libcurl quotes proxy URLs in some messages: their passwords go.
  std::string detail = redact_userinfo(t.errbuf[0] ? std::string(t.errbuf.data()) : curl_easy_strerror(code));
  std::string where = r.method + " " + redact_url(r.url);
  ErrorKind kind = ErrorKind::network;
  switch (code) {
  case CURLE_OPERATION_TIMEDOUT:
    kind = ErrorKind::timeout;
    break;
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_ISSUER_ERROR:
    kind = ErrorKind::tls;
    break;
  case CURLE_ABORTED_BY_CALLBACK:
    if (t.stalled) {
      kind = ErrorKind::timeout;
      detail = "no data moved for " +
               std::to_string(std::chrono::duration_cast<std::chrono::seconds>(t.stall_after).count()) +
               " s (stall timeout)";
      break;
    }
    kind = ErrorKind::cancelled;
    detail = "cancelled";
    break;
  case CURLE_URL_MALFORMAT:
  case CURLE_UNSUPPORTED_PROTOCOL:
    kind = ErrorKind::invalid;
    break;
  case CURLE_RECV_ERROR:
  case CURLE_SEND_ERROR:
    // A TLS alert from the server (e.g. "bad certificate": a client certificate is required) is
    // not a transient network fault.
    if (detail.find("SSL routines") != std::string::npos && detail.find("alert") != std::string::npos)
      kind = ErrorKind::tls;
    break;
  default:
    break;
  }
  // OpenSSL's words for a TLS handshake answered in plain HTTP: the most common first-run mistake
  // with an internal registry.
  if (kind == ErrorKind::tls && r.proxy.empty() && detail.find("wrong version number") != std::string::npos)
    detail += " (the server does not answer in TLS: plain HTTP? For such a registry, say \"insecure\": true "
              "in the auth file)";
  if (detail.find("Unsupported proxy") != std::string::npos || code == CURLE_COULDNT_RESOLVE_PROXY)
    kind = ErrorKind::invalid; // a proxy setting to fix, not a fault to retry
  if (detail.find("CONNECT tunnel failed, response 407") != std::string::npos) {
    kind = ErrorKind::unauthorized; // retrying would only send the refused credentials again
    detail += " (the proxy refused the credentials)";
  }
  if (!r.proxy.empty())
    detail += " (via proxy " + redact_userinfo(r.proxy) + ")";
  return make_error(kind, where + ": " + detail);
}

/// Next request of a redirect chain; Authorization never travels to another host, and a redirect
/// from https to plain http is refused.
Result<Request> follow(const Request& from, const Response& response) {
  Request next = from;
  next.url = resolve_url(response.url, response.header("location"));
  // Schemes as parsed, not as spelled: "HTTP://" and "http:/" are plain http too.
  Url a, b;
  if (!parse_url(from.url, a) || !parse_url(next.url, b))
    return make_error(ErrorKind::invalid, "refusing a redirect to something that is not an absolute http(s) URL (" +
                                              util::escape_control(redact_url(next.url)) + ")");
  if (a.scheme == "https" && b.scheme == "http")
    return make_error(ErrorKind::tls, "refusing a redirect from https to plain http (" + redact_url(next.url) + ")");
  if (a.authority != b.authority || a.scheme != b.scheme) {
    // Credentials (header, client certificate) and request bodies stay with the host they were
    // meant for; a switch from https to http would expose them too.
    next.headers.erase(std::remove_if(next.headers.begin(), next.headers.end(),
                                      [](const auto& h) { return to_lower(h.first) == "authorization"; }),
                       next.headers.end());
    next.tls.cert_file.clear();
    next.tls.key_file.clear();
    next.tls.cert_pem.clear();
    next.tls.key_pem.clear();
    if (a.authority != b.authority)
      next.body.clear();
  }
  if ((response.status == 303 || ((response.status == 301 || response.status == 302) && next.method == "POST")) &&
      next.method != "HEAD") {
    next.method = "GET";
    next.body.clear();
  }
  if (auto why = invalid_request(next); !why.empty())
    return make_error(ErrorKind::invalid, "refusing a redirect to " + util::escape_control(redact_url(next.url)) + ": " + why);
  return next;
}

using detail::resumed_answer;
using detail::resumed_refused;
using detail::ResumedBody;
using detail::rest_of;
using detail::Ring;
using detail::worth_resuming;

struct PipeState {
  explicit PipeState(std::size_t ring_capacity) : ring(ring_capacity) {}
  Ring ring;
  Transfer get;
  Transfer put;
  std::uint64_t expected = 0;
  std::uint64_t downloaded = 0;
  std::uint64_t uploaded = 0;
  bool get_paused = false;
  std::size_t get_pending = 0;
  bool put_paused = false;
  bool get_done = false;
  bool put_done = false;
  std::optional<Error> abort;
  const ChunkObserver* observer = nullptr;
  const CompletionCheck* complete = nullptr;
  ResumedBody resumed; ///< the download's, when it was asked again from `downloaded`
};

std::size_t on_pipe_download(char* data, std::size_t size, std::size_t n, void* user) {
  auto* s = static_cast<PipeState*>(user);
  const std::size_t total = size * n;
  if (!s->get.headers_done || !is_success(s->get.response.status)) {
    // Redirect or error body: keep a bounded copy for the error message.
    if (s->get.response.body.size() < error_body_limit)
      s->get.response.body.append(data, std::min(total, error_body_limit - s->get.response.body.size()));
    return total;
  }
  if (s->abort)
    return 0;
  auto drop = s->resumed.drop(s->get.response, s->downloaded, total);
  if (!drop) {
    s->abort = drop.error();
    return 0;
  }
  const char* body = data + *drop;
  const std::size_t len = total - *drop;
  if (len > s->ring.capacity())
    s->ring.grow(len);
  if (s->ring.free() < len) {
    s->get_paused = true;
    s->get.waiting = true;
    s->get_pending = len;
    return CURL_WRITEFUNC_PAUSE;
  }
  s->resumed.dropped(*drop);
  if (len == 0)
    return total;
  s->downloaded += len;
  if (s->downloaded > s->expected) {
    s->abort = make_error(ErrorKind::digest_mismatch, "source sent more bytes than the descriptor size " +
                                                         std::to_string(s->expected));
    return 0;
  }
  std::string_view chunk(body, len);
  if (*s->observer) {
    if (auto st = (*s->observer)(chunk); !st) {
      s->abort = st.error();
      return 0;
    }
  }
  s->ring.push(body, len);
  if (s->downloaded == s->expected && *s->complete) {
    if (auto st = (*s->complete)(); !st)
      s->abort = st.error();
  }
  return total;
}

std::size_t on_pipe_upload(char* buffer, std::size_t size, std::size_t n, void* user) {
  auto* s = static_cast<PipeState*>(user);
  if (s->abort)
    return CURL_READFUNC_ABORT;
  if (s->ring.size() == 0) {
    if (s->get_done)
      return CURL_READFUNC_ABORT; // the download ended without delivering everything
    s->put_paused = true;
    s->put.waiting = true;
    return CURL_READFUNC_PAUSE;
  }
  std::size_t got = s->ring.pop(buffer, size * n);
  s->uploaded += got;
  return got;
}

std::size_t on_pipe_upload_response(char* data, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::size_t len = size * n;
  if (t->response.body.size() < error_body_limit)
    t->response.body.append(data, std::min(len, error_body_limit - t->response.body.size()));
  return len;
}

} // namespace

std::string invalid_request(const Request& request) {
  const std::string& url = request.url;
  for (unsigned char c : url)
    if (c <= 0x20 || c >= 0x7f)
      return "the URL holds a control character, white space or a non-ASCII byte";
  Url parsed;
  if (!parse_url(url, parsed))
    return "not an absolute http(s) URL";
  // Path segments "." and ".." (also written %2e): libcurl would resolve them before sending, so
  // that "<repository>/manifests/../../other/manifests/x" would name another repository.
  const std::string path = parsed.path.substr(0, parsed.path.find_first_of("?#"));
  for (std::size_t from = 1; from <= path.size();) {
    std::size_t end = path.find('/', from);
    if (end == std::string::npos)
      end = path.size();
    const std::string raw = to_lower(path.substr(from, end - from));
    std::string segment;  // with every "%2e" read as "."
    for (std::size_t at = 0; at < raw.size();) {
      const bool encoded_dot = raw.compare(at, 3, "%2e") == 0;
      segment += encoded_dot ? '.' : raw[at];
      at += encoded_dot ? 3 : 1;
    }
    if (segment == "." || segment == "..")
      return "the URL's path has a \"" + path.substr(from, end - from) + "\" segment";
    from = end + 1;
  }
  // And what libcurl will send, by its own parser: the scheme, host, port and path it reads must be
  // the ones checked above, so that no difference between its view of a URL and ours can move a
  // request elsewhere.
  Url sent;
  if (!parse_url(url, sent, DotSegments::resolve) || sent.scheme != parsed.scheme || sent.authority != parsed.authority ||
      sent.path != parsed.path)
    return "libcurl would send it elsewhere than it reads (" + sent.scheme + "://" + sent.authority + sent.path + ")";
  auto is_tchar = [](unsigned char c) {
    return std::isalnum(c) || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
  };
  for (const auto& [name, value] : request.headers) {
    if (name.empty() || !std::all_of(name.begin(), name.end(), [&](unsigned char c) { return c != 0 && is_tchar(c); }))
      return "a header name that is not a token";
    for (unsigned char c : value)
      if ((c < 0x20 && c != '\t') || c == 0x7f)
        return "header " + name + " holds a control character (CR, LF or NUL would start another request)";
  }
  if (request.method.empty() || !std::all_of(request.method.begin(), request.method.end(), is_tchar))
    return "the method is not a token";
  return {};
}

namespace {
/// invalid_request() as an error naming the request (its URL escaped: it is the suspect part).
std::optional<Error> refused(const Request& r) {
  auto why = invalid_request(r);
  if (why.empty())
    return std::nullopt;
  return make_error(ErrorKind::invalid,
                    "refusing to send " + util::escape_control(r.method) + " " + util::escape_control(redact_url(r.url)) + ": " + why);
}

/// A buffered request gets the whole-request deadline (a streamed one has the stall timeout only).
void deadline(CURL* h, const Options& o) {
  if (o.request_deadline.count() > 0)
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(o.request_deadline.count() * 1000));
}
} // namespace

std::string header_of(const Headers& headers, std::string_view name) {
  auto same = [&](const std::string& k) {
    return std::equal(k.begin(), k.end(), name.begin(), name.end(), [](unsigned char a, unsigned char b) {
      return std::tolower(a) == std::tolower(b);
    });
  };
  for (const auto& [k, v] : headers)
    if (same(k))
      return v;
  return {};
}

struct Client::Impl {
  CURLSH* share = nullptr;
  TrustStores trust;
  std::array<std::mutex, CURL_LOCK_DATA_LAST> locks;

  static void lock(CURL*, curl_lock_data data, curl_lock_access, void* user) {
    static_cast<Impl*>(user)->locks[data].lock();
  }
  static void unlock(CURL*, curl_lock_data data, void* user) {
    static_cast<Impl*>(user)->locks[data].unlock();
  }

  Impl() {
    share = curl_share_init();
    curl_share_setopt(share, CURLSHOPT_LOCKFUNC, &Impl::lock);
    curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, &Impl::unlock);
    curl_share_setopt(share, CURLSHOPT_USERDATA, this);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  }
  ~Impl() {
    for (CURL* h : idle)
      curl_easy_cleanup(h);
    curl_share_cleanup(share);
  }

  // Easy handles are kept for the next request: a new one costs allocations and, inside
  // curl_easy_perform, a multi handle with its own wake-up socket pair (measured: a third of
  // image-migrator's CPU in a no-op re-sync went to creating and closing them).
  std::mutex idle_mutex;
  std::vector<CURL*> idle;
  static constexpr std::size_t max_idle = 64;

  struct Returner {
    Impl* impl;
    void operator()(CURL* h) const { impl->give_back(h); }
  };
  using Lease = std::unique_ptr<CURL, Returner>;

  Lease take() {
    CURL* h = nullptr;
    {
      std::lock_guard lock(idle_mutex);
      if (!idle.empty()) {
        h = idle.back();
        idle.pop_back();
      }
    }
    return Lease(h ? h : curl_easy_init(), Returner{this});
  }
  void give_back(CURL* h) {
    curl_easy_reset(h);
    std::lock_guard lock(idle_mutex);
    if (idle.size() < max_idle) {
      idle.push_back(h);
      return;
    }
    curl_easy_cleanup(h);
  }

  /// One request. Without `sink` the body is buffered; with it, the body of a 2xx answer goes to the sink
  /// chunk by chunk (other answers are buffered: they are small error documents). With `reader`, the
  /// request body is read from it (upload_size bytes) instead of taken from request.body.
  /// `streamed` (with a sink) counts the body bytes given to it over all calls; when it is not 0
  /// the request is a resumed one (it carries a Range from there) and its answer is checked
  /// before any byte reaches the sink.
  Result<Response> perform(const Request& r, const Options& o, const ChunkObserver* sink = nullptr,
                           const BodyReader* reader = nullptr, std::uint64_t* streamed = nullptr) {
    if (auto no = refused(r))
      return *no;
    Lease h = take();
    if (!h)
      return make_error(ErrorKind::network, "cannot create a libcurl handle");
    struct Streamed {
      Transfer t;
      const ChunkObserver* sink = nullptr;
      const BodyReader* reader = nullptr;
      std::optional<Error> abort;
      std::uint64_t* streamed = nullptr;
      ResumedBody resumed;
    } st;
    Transfer& t = st.t;
    st.sink = sink;
    st.reader = reader;
    st.streamed = streamed;
    st.resumed.expect(streamed && *streamed > 0);
    t.body_limit = o.max_buffered_body;
    setup(h.get(), r, t, o, share, trust);
    if (sink || reader)
      bulk(h.get()); // streamed bodies are blobs
    if (reader) {
      curl_easy_setopt(h.get(), CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(h.get(), CURLOPT_UPLOAD_BUFFERSIZE, transfer_buffer);
      curl_easy_setopt(h.get(), CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(r.upload_size.value_or(0)));
      curl_easy_setopt(h.get(), CURLOPT_READFUNCTION, +[](char* buf, std::size_t size, std::size_t n, void* user) -> std::size_t {
        auto* s = static_cast<Streamed*>(user);
        auto got = (*s->reader)(buf, size * n);
        if (!got) {
          s->abort = got.error();
          return CURL_READFUNC_ABORT;
        }
        return *got;
      });
      curl_easy_setopt(h.get(), CURLOPT_READDATA, &st);
    } else {
      set_body(h.get(), r);
    }
    if (sink) {
      curl_easy_setopt(h.get(), CURLOPT_BUFFERSIZE, transfer_buffer);
      curl_easy_setopt(h.get(), CURLOPT_WRITEFUNCTION, +[](char* data, std::size_t size, std::size_t n, void* user) -> std::size_t {
        auto* s = static_cast<Streamed*>(user);
        if (!is_success(s->t.response.status))
          return on_buffered_body(data, size, n, &s->t);
        auto drop = s->resumed.drop(s->t.response, s->streamed ? *s->streamed : 0, size * n);
        if (!drop) {
          s->abort = drop.error();
          return 0;
        }
        s->resumed.dropped(*drop);
        std::string_view chunk(data + *drop, size * n - *drop);
        if (chunk.empty())
          return size * n;
        if (auto ok = (*s->sink)(chunk); !ok) {
          s->abort = ok.error();
          return 0;
        }
        if (s->streamed)
          *s->streamed += chunk.size();
        return size * n;
      });
      curl_easy_setopt(h.get(), CURLOPT_WRITEDATA, &st);
    } else {
      curl_easy_setopt(h.get(), CURLOPT_WRITEFUNCTION, on_buffered_body);
      curl_easy_setopt(h.get(), CURLOPT_WRITEDATA, &t);
      if (!reader)
        deadline(h.get(), o);
    }
    CURLcode code = curl_easy_perform(h.get());
    if (st.abort)
      return *st.abort;
    return conclude(h.get(), code, t, r);
  }

  /// The outcome of a finished buffered transfer.
  static Result<Response> conclude(CURL* h, CURLcode code, Transfer& t, const Request& r) {
    trace_done(h, code, t, r);
    if (t.body_too_large)
      return make_error(ErrorKind::invalid, r.method + " " + redact_url(r.url) + ": response body larger than " +
                                                std::to_string(t.body_limit) + " bytes");
    if (code != CURLE_OK)
      return curl_error(code, t, r);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    t.response.status = status;
    t.response.url = r.url;
    return std::move(t.response);
  }
};

void Client::stream(const std::function<std::optional<Streamed>(bool idle)>& next,
                    const std::function<void(std::uint64_t id, Result<Response> response)>& on_done,
                    std::size_t parallel) {
  struct Running {
    Impl::Lease handle;
    Transfer transfer;
    Streamed item;
  };
  parallel = std::max<std::size_t>(1, parallel);
  Multi multi(curl_multi_init());
  std::map<CURL*, std::unique_ptr<Running>> running;
  struct Detach { // should next() or on_done() throw: handles leave the multi before either is freed
    CURLM* multi;
    std::map<CURL*, std::unique_ptr<Running>>& running;
    ~Detach() {
      for (auto& [h, run] : running)
        curl_multi_remove_handle(multi, h);
    }
  } detach{multi.get(), running};
  bool ended = false;
  // Fills the free places; true when there is nothing in flight and nothing more to come.
  auto start_more = [&] {
    while (!ended && running.size() < parallel) {
      auto item = next(running.empty());
      if (!item) {
        ended = running.empty(); // asked while idle: the end
        break;
      }
      if (auto no = refused(item->request)) {
        on_done(item->id, *no);
        continue;
      }
      auto run = std::make_unique<Running>();
      run->item = std::move(*item);
      run->handle = m_impl->take();
      CURL* h = run->handle.get();
      if (!h || !multi) {
        on_done(run->item.id, make_error(ErrorKind::network, "cannot create a libcurl handle"));
        continue;
      }
      const Request& r = run->item.request;
      run->transfer.body_limit = m_options.max_buffered_body;
      setup(h, r, run->transfer, m_options, m_impl->share, m_impl->trust);
      set_body(h, r);
      curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_buffered_body);
      curl_easy_setopt(h, CURLOPT_WRITEDATA, &run->transfer);
      deadline(h, m_options);
      auto [slot, added] = running.emplace(h, std::move(run));
      if (curl_multi_add_handle(multi.get(), h) != CURLM_OK) {
        auto failed = std::move(slot->second);
        running.erase(slot);
        on_done(failed->item.id, make_error(ErrorKind::network, "cannot add a request to the libcurl multi handle"));
      }
    }
    return ended && running.empty();
  };
  while (!start_more()) {
    if (running.empty())
      continue; // next() had nothing while idle only once `ended`; otherwise ask again
    int still = 0;
    curl_multi_perform(multi.get(), &still);
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi.get(), &queued)) {
      if (msg->msg != CURLMSG_DONE)
        continue;
      auto it = running.find(msg->easy_handle);
      if (it == running.end())
        continue;
      CURLcode code = msg->data.result; // read before the handle leaves the multi
      auto run = std::move(it->second);
      running.erase(it);
      curl_multi_remove_handle(multi.get(), run->handle.get());
      auto result = Impl::conclude(run->handle.get(), code, run->transfer, run->item.request);
      on_done(run->item.id, std::move(result));
    }
    if (!running.empty())
      // Short: a request that next() did not have a moment ago may have come meanwhile.
      curl_multi_poll(multi.get(), nullptr, 0, 5, nullptr);
  }
}

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    curl_global_init(CURL_GLOBAL_DEFAULT);
  });
}

Client::Client(Options options) : m_options(std::move(options)), m_impl(std::make_unique<Impl>()) {}
Client::~Client() = default;

Result<Response> Client::send(const Request& request) { return download(request, nullptr); }

Result<Response> Client::download(const Request& request, const ChunkObserver& on_chunk, const ResumeHook& on_resume) {
  Request current = request;
  std::uint64_t streamed = 0; // body bytes given to on_chunk
  std::uint64_t resumed_at = 0;
  unsigned resumes = 0;
  for (int hop = 0;; ++hop) {
    auto response = m_impl->perform(current, m_options, on_chunk ? &on_chunk : nullptr, nullptr, &streamed);
    if (!response && on_resume && on_chunk &&
        worth_resuming(response.error(), resumes, streamed, resumed_at)) {
      // Broken after some of the body: ask for the rest (redirects are followed again).
      Request again = rest_of(request, streamed);
      if (auto st = on_resume(again, streamed, response.error()); !st)
        return response;
      ++resumes;
      resumed_at = streamed;
      current = std::move(again);
      hop = -1;
      continue;
    }
    if (!response || !current.follow_redirects || !is_redirect(response->status) ||
        response->header("location").empty()) {
      if (response && resumes > 0 && !is_success(response->status))
        return resumed_refused(current, *response, streamed);
      return response;
    }
    if (hop == 10)
      return make_error(ErrorKind::network, "too many redirects from " + redact_url(request.url));
    auto next = follow(current, *response);
    if (!next)
      return next.error();
    current = std::move(*next);
  }
}

Result<Response> Client::upload(const Request& request, const BodyReader& read) {
  return m_impl->perform(request, m_options, nullptr, &read);
}

Result<PipeResult> Client::pipe(const Request& get_request, const Request& put_request,
                                const ChunkObserver& on_chunk, const CompletionCheck& on_complete,
                                const ResumeHook& on_resume) {
  for (const Request* r : {&get_request, &put_request})
    if (auto no = refused(*r))
      return *no;
  // A blob smaller than the ring needs no more than its own size (plus one transfer chunk).
  const std::uint64_t expected = put_request.upload_size.value_or(0);
  PipeState s(static_cast<std::size_t>(
      std::min<std::uint64_t>(m_options.pipe_buffer, std::max<std::uint64_t>(expected, transfer_buffer))));
  s.expected = expected;
  s.observer = &on_chunk;
  s.complete = &on_complete;
  Multi multi(curl_multi_init());
  curl_multi_setopt(multi.get(), CURLMOPT_MAXCONNECTS, 128L);
  Request get = get_request; // the download in flight: after redirects, with a Range when resumed
  Easy get_h;
  auto open_get = [&] {
    if (get_h)
      curl_multi_remove_handle(multi.get(), get_h.get());
    get_h.reset(curl_easy_init());
    s.get = Transfer{};
    s.get_paused = false;
    s.get_pending = 0;
    setup(get_h.get(), get, s.get, m_options, m_impl->share, m_impl->trust);
    bulk(get_h.get());
    curl_easy_setopt(get_h.get(), CURLOPT_BUFFERSIZE, transfer_buffer);
    curl_easy_setopt(get_h.get(), CURLOPT_WRITEFUNCTION, on_pipe_download);
    curl_easy_setopt(get_h.get(), CURLOPT_WRITEDATA, &s);
    curl_multi_add_handle(multi.get(), get_h.get());
  };
  int hops = 0; // redirects followed for the current download (the first one, or the last resumed one)
  // Sends the request the redirect answer in s.get points to.
  auto follow_redirect = [&]() -> Status {
    if (hops++ == 10)
      return make_error(ErrorKind::network, "too many redirects from " + redact_url(get_request.url));
    auto next = follow(get, s.get.response);
    if (!next)
      return next.error();
    get = std::move(*next);
    open_get();
    return {};
  };

  // A broken download is asked again from where it stopped while the upload waits.
  std::uint64_t resumed_at = 0;
  unsigned resumes = 0;
  auto can_resume = [&](const Error& why) {
    return on_resume && !s.put_done && s.downloaded < s.expected &&
           worth_resuming(why, resumes, s.downloaded, resumed_at);
  };

  // Phase 1: the download's headers, following redirects by hand.
  std::optional<Error> early_break; // the body broke before the upload was open (all in one read)
  for (;;) {
    if (!get_h)
      open_get();
    s.get_done = false;
    CURLcode get_code = CURLE_OK;
    while (!s.get.headers_done && !s.get_done) {
      int running = 0;
      curl_multi_perform(multi.get(), &running);
      int queued = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi.get(), &queued)) {
        if (msg->msg == CURLMSG_DONE) {
          s.get_done = true;
          get_code = msg->data.result;
          trace_done(get_h.get(), get_code, s.get, get);
        }
      }
      if (!s.get.headers_done && !s.get_done)
        curl_multi_poll(multi.get(), nullptr, 0, 100, nullptr);
    }
    s.get.response.url = get.url;
    if (s.get_done && get_code != CURLE_OK) {
      auto why = curl_error(get_code, s.get, get);
      if (s.get.headers_done && is_success(s.get.response.status) && !s.abort && can_resume(why)) {
        early_break = std::move(why); // resumed below, once the upload is open
        break;
      }
      curl_multi_remove_handle(multi.get(), get_h.get());
      return why;
    }
    if (is_redirect(s.get.response.status) && !s.get.response.header("location").empty()) {
      if (auto st = follow_redirect(); !st) {
        curl_multi_remove_handle(multi.get(), get_h.get());
        return st.error();
      }
      continue;
    }
    break;
  }

  PipeResult result;
  if (s.get_done && is_success(s.get.response.status) && !early_break) {
    // Small bodies can arrive with the headers: the download may already be over (or aborted).
    if (s.abort)
      return *s.abort;
    if (s.downloaded != s.expected)
      return make_error(ErrorKind::network, "source body ended after " + std::to_string(s.downloaded) + " of " +
                                                std::to_string(s.expected) + " bytes");
  }
  if (!is_success(s.get.response.status)) {
    // Drain the (small) error body, upload nothing.
    while (!s.get_done) {
      int running = 0;
      curl_multi_perform(multi.get(), &running);
      int queued = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi.get(), &queued))
        if (msg->msg == CURLMSG_DONE) {
          s.get_done = true;
          trace_done(get_h.get(), msg->data.result, s.get, get);
        }
      if (!s.get_done)
        curl_multi_poll(multi.get(), nullptr, 0, 100, nullptr);
    }
    curl_multi_remove_handle(multi.get(), get_h.get());
    result.download = std::move(s.get.response);
    return result;
  }
  Response first_answer = s.get.response; // what the caller sees, even when a resumed request answered last

  // Phase 2: stream into the upload.
  Easy put_h(curl_easy_init());
  setup(put_h.get(), put_request, s.put, m_options, m_impl->share, m_impl->trust);
  bulk(put_h.get());
  curl_easy_setopt(put_h.get(), CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(put_h.get(), CURLOPT_UPLOAD_BUFFERSIZE, transfer_buffer);
  curl_easy_setopt(put_h.get(), CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(s.expected));
  curl_easy_setopt(put_h.get(), CURLOPT_READFUNCTION, on_pipe_upload);
  curl_easy_setopt(put_h.get(), CURLOPT_READDATA, &s);
  curl_easy_setopt(put_h.get(), CURLOPT_WRITEFUNCTION, on_pipe_upload_response);
  curl_easy_setopt(put_h.get(), CURLOPT_WRITEDATA, &s.put);
  curl_multi_add_handle(multi.get(), put_h.get());

  auto resume = [&](const Error& why) -> Status {
    Request again = rest_of(get_request, s.downloaded);
    if (auto st = on_resume(again, s.downloaded, why); !st)
      return st;
    ++resumes;
    resumed_at = s.downloaded;
    hops = 0;
    get = std::move(again);
    s.resumed.expect(true);
    s.get_done = false;
    open_get();
    return {};
  };

  if (early_break) {
    if (auto st = resume(*early_break); !st) {
      s.get_done = true;
      s.abort = std::move(*early_break);
    }
  }

  CURLcode put_code = CURLE_OK;
  while (!(s.get_done && s.put_done)) {
    int running = 0;
    curl_multi_perform(multi.get(), &running);
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi.get(), &queued)) {
      if (msg->msg != CURLMSG_DONE)
        continue;
      if (msg->easy_handle != get_h.get()) {
        s.put_done = true;
        put_code = msg->data.result;
        trace_done(put_h.get(), put_code, s.put, put_request);
        continue;
      }
      const CURLcode get_code = msg->data.result;
      trace_done(get_h.get(), get_code, s.get, get);
      s.get.response.url = get.url;
      if (s.abort) { // ours: a digest, a size or a resumed answer that does not fit
        s.get_done = true;
        continue;
      }
      std::optional<Error> broke;
      if (get_code != CURLE_OK) {
        broke = curl_error(get_code, s.get, get);
      } else if (is_redirect(s.get.response.status) && !s.get.response.header("location").empty()) {
        // Only a resumed request can get here: the first one's redirects were followed above.
        if (auto st = follow_redirect(); !st)
          broke = st.error();
        else
          continue;
      } else if (!is_success(s.get.response.status)) {
        // Transient as far as the caller is concerned: starting the whole blob again may well work.
        broke = resumed_refused(get, s.get.response, s.downloaded);
      } else if (s.downloaded != s.expected) {
        broke = make_error(ErrorKind::network, "source body ended after " + std::to_string(s.downloaded) + " of " +
                                                   std::to_string(s.expected) + " bytes");
      }
      if (broke && can_resume(*broke)) {
        if (auto st = resume(*broke); st)
          continue;
      }
      s.get_done = true;
      if (broke)
        s.abort = std::move(*broke);
    }
    if (s.put_done && !s.get_done) {
      // The upload ended first (rejected or failed): stop downloading.
      curl_multi_remove_handle(multi.get(), get_h.get());
      s.get_done = true; // the registry's answer (in result.upload) says why
    }
    if (s.get_paused && !s.get_done && s.ring.free() >= s.get_pending) {
      s.get_paused = false;
      s.get.waiting = false; // its stall clock starts again now
      s.get.moved_at = std::chrono::steady_clock::now();
      curl_easy_pause(get_h.get(), CURLPAUSE_CONT);
    }
    if (s.put_paused && !s.put_done && (s.ring.size() > 0 || s.get_done || s.abort)) {
      s.put_paused = false;
      s.put.waiting = false;
      s.put.moved_at = std::chrono::steady_clock::now();
      curl_easy_pause(put_h.get(), CURLPAUSE_CONT);
    }
    if (!(s.get_done && s.put_done))
      curl_multi_poll(multi.get(), nullptr, 0, 50, nullptr);
  }
  curl_multi_remove_handle(multi.get(), get_h.get());
  curl_multi_remove_handle(multi.get(), put_h.get());

  long put_status = 0;
  curl_easy_getinfo(put_h.get(), CURLINFO_RESPONSE_CODE, &put_status);
  s.put.response.status = put_status;
  s.put.response.url = put_request.url;
  result.bytes = s.downloaded;
  result.download = std::move(first_answer);
  result.upload = std::move(s.put.response);
  if (s.abort)
    return *s.abort;
  if (put_code != CURLE_OK)
    return curl_error(put_code, s.put, put_request);
  return result;
}

} // namespace http
