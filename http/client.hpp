#pragma once
// The only place that talks to libcurl. Requests are values; responses are buffered for small
// bodies (manifests, tokens, errors) and streamed for blobs. `pipe` streams one download straight
// into one upload through a bounded ring buffer, in the calling thread, so memory does not grow with
// blob size and no thread is created per blob.

#include "http/rate.hpp"
#include "http/result.hpp"
#include "util/cancel.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace http {

using Headers = std::vector<std::pair<std::string, std::string>>;

/// First value of the header (case-insensitive name), or "" when absent.
std::string header_of(const Headers& headers, std::string_view name);

/// TLS settings for one registry. Verification is on unless explicitly turned off.
struct Tls {
  std::string ca_file;   ///< extra CA bundle (PEM), added to the system store
  std::string ca_pem;    ///< CA certificates in memory (PEM): the ONLY trusted roots (kubeconfig semantics)
  std::string cert_file; ///< client certificate (PEM)
  std::string key_file;  ///< client key (PEM)
  std::string cert_pem;  ///< client certificate in memory (PEM)
  std::string key_pem;   ///< client key in memory (PEM)
  std::string server_name; ///< verify the certificate (and send SNI) for this name instead of the URL's host
  bool verify = true;
};

struct Request {
  std::string method = "GET";
  std::string url;
  Headers headers;
  std::string body;               ///< sent as-is for small bodies
  Tls tls;
  bool follow_redirects = false;  ///< Authorization is dropped when the host changes
  std::string proxy;              ///< explicit proxy URL; empty = libcurl's environment (HTTPS_PROXY, NO_PROXY)
  std::vector<std::string> connect_to; ///< libcurl CONNECT_TO entries "HOST:PORT:ADDRESS:PORT" (TLS still checks HOST)
  std::optional<std::uint64_t> upload_size; ///< for pipe(): the streamed body's exact length

  /// First value of the header (case-insensitive name), or "" when absent.
  std::string header(std::string_view name) const { return header_of(headers, name); }
};

struct Response {
  long status = 0;
  Headers headers;  ///< names lower-cased, in arrival order
  std::string body; ///< empty for HEAD and for streamed bodies
  std::string url;  ///< the URL that produced this response (after redirects)

  /// First value of the header (case-insensitive name), or "" when absent.
  std::string header(std::string_view name) const { return header_of(headers, name); }
};

struct Options {
  std::chrono::seconds connect_timeout{15};
  long low_speed_limit = 1;                 ///< bytes/s below which a transfer is "stalled"
  std::chrono::seconds low_speed_time{60};  ///< ... for this long
  std::string user_agent = "image-migrator";
  std::size_t max_buffered_body = 16u << 20; ///< larger buffered bodies are an error
  std::size_t pipe_buffer = 1u << 20;        ///< ring buffer between download and upload
  const util::CancelToken* cancel = nullptr; ///< when it is aborted, transfers in flight are cut
  std::vector<std::string> resolve;          ///< "HOST:PORT:ADDRESS" entries (like curl --resolve)
  RateLimit* rate_limit = nullptr;           ///< the download budget all transfers share (--limit-rate)
  /// Sees one line per finished buffered request: method, redacted URL, status or error, time, bytes
  /// (-v). Never headers or bodies: credentials stay out.
  std::function<void(const std::string& line)> trace;
  /// Whole-request deadline for buffered requests (manifests, HEADs, tag lists, tokens, API lists):
  /// a body that trickles in keeps moving, so the stall timeout alone would never end it. Streamed
  /// blobs have only the stall timeout. 0 = none.
  std::chrono::seconds request_deadline{300};
};

/// Why a request must not be sent ("" when it may): a URL that is not absolute http(s), has control
/// characters, white space, or "."/".." path segments (also percent-encoded: libcurl would resolve
/// them, and a name from a registry would reach another repository); a header name that is not an
/// RFC 9110 token, or a name or value with CR, LF or NUL (one request smuggled into another).
/// Every request goes through this check before it is sent, redirects included.
std::string invalid_request(const Request& request);

/// Sees each chunk flowing through pipe(); an error aborts the upload before it completes.
using ChunkObserver = std::function<Status(std::string_view chunk)>;
/// Fills up to `max` bytes of a request body; 0 = the end. An error aborts the request.
using BodyReader = std::function<Result<std::size_t>(char* buffer, std::size_t max)>;
/// Called once the download has delivered every byte, before the upload gets its last bytes.
using CompletionCheck = std::function<Status()>;
/// Called before pipe() resumes a broken download: `get` is the original request with a
/// `Range: bytes=<offset>-` header added (it may be changed, e.g. given fresh credentials),
/// `offset` the bytes already streamed into the upload, `why` the failure. An error from it stops
/// the resuming: pipe() then fails with `why`.
using ResumeHook = std::function<Status(Request& get, std::uint64_t offset, const Error& why)>;

struct PipeResult {
  Response download; ///< status != 2xx means nothing was uploaded (body holds the error)
  Response upload;   ///< status 0 when the upload was not started
  std::uint64_t bytes = 0;
};

/// Thread-safe HTTP client. One per process; connections, DNS and TLS sessions are shared.
class Client {
public:
  explicit Client(Options options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// Sends a request and buffers the response body (none for HEAD).
  Result<Response> send(const Request& request);

  /// Like send, but the body of a 2xx answer streams into `on_chunk` (an error from it aborts the
  /// transfer); other answers are buffered. With an empty `on_chunk` it is send(). With
  /// `on_resume`, a body that breaks after some bytes is asked again from there, as in pipe().
  Result<Response> download(const Request& request, const ChunkObserver& on_chunk, const ResumeHook& on_resume = {});

  /// One request of a stream: an id of the caller's choosing, and the request.
  struct Streamed {
    std::uint64_t id = 0;
    Request request;
  };
  /// Keeps up to `parallel` requests in flight from the calling thread (one libcurl multi handle:
  /// no thread per request). `next(idle)` gives the next request, or nullopt when it has none
  /// now; with `idle` true (nothing in flight) it may wait for one, and nullopt then ends the
  /// stream. `on_done` gets every answer, buffered, in the calling thread. No redirects are
  /// followed: a 3xx comes back as it is.
  void stream(const std::function<std::optional<Streamed>(bool idle)>& next,
              const std::function<void(std::uint64_t id, Result<Response> response)>& on_done, std::size_t parallel);

  /// Sends a request whose body (request.upload_size bytes) is read from `read` as libcurl asks for it.
  /// No redirects are followed.
  Result<Response> upload(const Request& request, const BodyReader& read);

  /// Streams the body of `get` (following redirects, never carrying Authorization to another host)
  /// into the body of `put` (a PUT or PATCH with upload_size set). With `on_resume`, a download that
  /// breaks (reset, cut short, stalled) while the upload is still open is asked again from where it
  /// stopped (`Range`; a 200 instead of a 206 has its first bytes skipped), so the upload goes on
  /// and no byte is sent twice: up to `max_resumes` times, each after some progress.
  Result<PipeResult> pipe(const Request& get, const Request& put, const ChunkObserver& on_chunk,
                          const CompletionCheck& on_complete, const ResumeHook& on_resume = {});

  static constexpr unsigned max_resumes = 8; ///< per download (pipe() or download())

  const Options& options() const { return m_options; }

private:
  struct Impl;
  Options m_options;
  std::unique_ptr<Impl> m_impl;
};

/// Calls curl_global_init once; call from main before any Client exists.
void global_init();

} // namespace http
