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

Error make_error(ErrorKind kind, std::string message, long status) {
  Error e;
  e.kind = kind;
  e.message = std::move(message);
  e.status = status;
  return e;
}

} // namespace http
