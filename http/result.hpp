#pragma once
// Expected failures as values: every operation that can fail for a reason outside the program's
// control (network, registry, input) returns Result<T>. Exceptions are reserved for fatal errors.

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace http {

/// What went wrong, coarse enough to decide what to do next (retry, give up, re-authenticate).
enum class ErrorKind {
  network,         ///< connect/reset/DNS/TLS failure, body cut short: usually transient
  timeout,         ///< no progress within the low-speed window
  tls,             ///< certificate verification or handshake failed: not retried
  http_status,     ///< the server answered with an unexpected status (see Error::status)
  unauthorized,    ///< 401/403 after authenticating: wrong credentials or no permission
  not_found,       ///< 404 / MANIFEST_UNKNOWN / NAME_UNKNOWN / BLOB_UNKNOWN
  digest_mismatch, ///< bytes do not hash to the digest they were announced with
  invalid,         ///< malformed input (reference, JSON, header, manifest)
  unsupported,     ///< valid but not supported (schema 1 manifests, ...)
  rate_limited,    ///< a registry's quota is used up for a long window (Docker Hub pulls): not retried
  cancelled,       ///< the run is shutting down
};

/// An expected failure with enough context to print one clear line.
struct Error {
  ErrorKind kind = ErrorKind::invalid;
  std::string message;
  long status = 0;                        ///< HTTP status when there was one
  std::chrono::milliseconds retry_after{0}; ///< server's Retry-After, when given

  /// True when trying the same thing again later may succeed (network faults, 408/429/5xx).
  bool retryable() const;

  /// Returns a copy whose message is prefixed with `context: `.
  Error context(const std::string& what) const;
};

Error make_error(ErrorKind kind, std::string message, long status = 0);

/// The address ("host:port", or a host name that did not resolve) that an error's message says
/// could not be reached at all; "" for any other error. Lets a run say "unreachable" once per
/// registry instead of once per request.
std::string unreachable_address(std::string_view message);

/// The kind's name as reports spell it: "network", "not_found", "digest_mismatch", ...
const char* to_string(ErrorKind kind);

/// A value or an Error. Small on purpose: has_value(), value(), error(), operator bool.
template <class T> class [[nodiscard]] Result {
public:
  Result(T value) : m_v(std::move(value)) {}
  Result(Error error) : m_v(std::move(error)) {}

  bool has_value() const { return m_v.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& value() & { return std::get<0>(m_v); }
  const T& value() const& { return std::get<0>(m_v); }
  T&& value() && { return std::get<0>(std::move(m_v)); }
  T* operator->() { return &std::get<0>(m_v); }
  const T* operator->() const { return &std::get<0>(m_v); }
  T& operator*() & { return std::get<0>(m_v); }
  const T& operator*() const& { return std::get<0>(m_v); }
  const Error& error() const { return std::get<1>(m_v); }

private:
  std::variant<T, Error> m_v;
};

template <> class [[nodiscard]] Result<void> {
public:
  Result() = default;
  Result(Error error) : m_error(std::move(error)), m_ok(false) {}
  bool has_value() const { return m_ok; }
  explicit operator bool() const { return m_ok; }
  const Error& error() const { return m_error; }

private:
  Error m_error;
  bool m_ok = true;
};

using Status = Result<void>;

} // namespace http

/// Propagates an error from an expression returning Result<...>.
#define IM_TRY(expr)                                                                               \
  do {                                                                                             \
    auto&& im_try_result_ = (expr);                                                                \
    if (!im_try_result_)                                                                           \
      return im_try_result_.error();                                                               \
  } while (0)
