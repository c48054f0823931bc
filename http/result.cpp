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

std::string unreachable_address(std::string_view message) {
  // libcurl's words: "Failed to connect to HOST port N after T ms: ..." and "Could not resolve
  // host: HOST" (its messages reach us verbatim, after our context).
  auto word_after = [&](std::string_view lead) -> std::string {
    auto at = message.find(lead);
    if (at == std::string_view::npos)
      return {};
    auto rest = message.substr(at + lead.size());
    return std::string(rest.substr(0, rest.find_first_of(" :\n")));
  };
  if (auto host = word_after("Failed to connect to "); !host.empty()) {
    auto port = word_after("Failed to connect to " + host + " port ");
    return port.empty() ? host : host + ":" + port;
  }
  return word_after("Could not resolve host: ");
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
