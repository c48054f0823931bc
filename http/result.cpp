#include "http/result.hpp"

namespace http {

bool Error::retryable() const {
  switch (kind) {
  case ErrorKind::network:
  case ErrorKind::timeout:
    return true;
  case ErrorKind::http_status:
    return status == 408 || status == 429 || status >= 500;
  default:
    return false;
  }
}

Error Error::context(const std::string& what) const {
  Error e = *this;
  e.message = what + ": " + message;
  return e;
}

const char* to_string(ErrorKind kind) {
  switch (kind) {
  case ErrorKind::network:
    return "network";
  case ErrorKind::timeout:
    return "timeout";
  case ErrorKind::tls:
    return "tls";
  case ErrorKind::http_status:
    return "http_status";
  case ErrorKind::unauthorized:
    return "unauthorized";
  case ErrorKind::not_found:
    return "not_found";
  case ErrorKind::digest_mismatch:
    return "digest_mismatch";
  case ErrorKind::invalid:
    return "invalid";
  case ErrorKind::unsupported:
    return "unsupported";
  case ErrorKind::rate_limited:
    return "rate_limited";
  case ErrorKind::cancelled:
    return "cancelled";
  }
  return "unknown";
}

Error make_error(ErrorKind kind, std::string message, long status) {
  Error e;
  e.kind = kind;
  e.message = std::move(message);
  e.status = status;
  return e;
}

} // namespace http
