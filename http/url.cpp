#include "http/url.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <optional>

namespace http {

namespace {

using CurlUrl = std::unique_ptr<CURLU, decltype(&curl_url_cleanup)>;

/// `text` as libcurl's own URL parser reads it (relative to `base` when given); null when it cannot.
/// By default dot segments are kept as written (CURLU_PATH_AS_IS), so that a caller sees, and can
/// refuse, a "../" that libcurl would otherwise resolve before sending.
CurlUrl curl_parse(const std::string& text, const CurlUrl* base = nullptr, unsigned flags = CURLU_PATH_AS_IS) {
  CurlUrl u(base ? curl_url_dup(base->get()) : curl_url(), curl_url_cleanup);
  if (!u || curl_url_set(u.get(), CURLUPART_URL, text.c_str(), flags) != CURLUE_OK)
    return CurlUrl(nullptr, curl_url_cleanup);
  return u;
}

std::string part(const CurlUrl& u, CURLUPart which) {
  char* text = nullptr;
  std::string out;
  if (curl_url_get(u.get(), which, &text, 0) == CURLUE_OK && text)
    out = text;
  curl_free(text);
  return out;
}

} // namespace

bool parse_url(std::string_view text, Url& out, DotSegments dots) {
  // Parsed by libcurl, the parser of the URLs it will send: what we check is what goes on the wire.
  auto u = curl_parse(std::string(text), nullptr, dots == DotSegments::keep ? CURLU_PATH_AS_IS : 0);
  if (!u)
    return false;
  const std::string scheme = to_lower(part(u, CURLUPART_SCHEME));
  const std::string host = part(u, CURLUPART_HOST);
  if ((scheme != "http" && scheme != "https") || host.empty())
    return false;
  const std::string port = part(u, CURLUPART_PORT);
  const std::string zone = part(u, CURLUPART_ZONEID);
  const std::string query = part(u, CURLUPART_QUERY);
  std::string path = part(u, CURLUPART_PATH);
  if (path.empty() || path[0] != '/')
    path = "/" + path;
  out.scheme = scheme;
  // An IPv6 zone ("[fe80::1%25eth0]") picks the interface, so the machine: it is part of the
  // authority, or two hosts on two links would pass for the same registry.
  const std::string address = zone.empty() || host.empty() || host.back() != ']'
                                  ? host
                                  : host.substr(0, host.size() - 1) + "%25" + zone + "]";
  out.authority = to_lower(port.empty() ? address : address + ":" + port);
  out.path = query.empty() ? path : path + "?" + query;
  return true;
}

std::string resolve_url(const std::string& base, const std::string& location) {
  Url parsed;
  if (parse_url(location, parsed))
    return location; // absolute: as the server wrote it
  // libcurl resolves a relative reference against the URL it holds, dot segments removed (RFC 3986
  // section 5.2, as Go's clients do): the server's own directions. (Absolute URLs above, and URLs
  // built from names, keep theirs: invalid_request refuses them.)
  auto b = curl_parse(base, nullptr, 0);
  if (!b)
    return location;
  auto resolved = curl_parse(location, &b, 0);
  return resolved ? part(resolved, CURLUPART_URL) : location;
}

std::string authority_of(const std::string& url) {
  Url u;
  return parse_url(url, u) ? u.authority : std::string();
}

std::string to_lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string url_encode(std::string_view text) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string redact_url(const std::string& url) {
  Url u;
  if (!parse_url(url, u))
    return url.substr(0, url.find('?'));
  auto q = u.path.find('?');
  std::string path = q == std::string::npos ? u.path : u.path.substr(0, q) + "?<redacted>";
  return u.scheme + "://" + u.authority + path;
}

std::string redact_userinfo(std::string text) {
  // Everything from "://" to the last '@' before the URL ends (white space, a quote, '<' or '>') is
  // user information: a password may hold '/', '?' or '#', so those do not end it. Over-redacting an
  // '@' in a path is harmless; showing a password is not.
  for (std::size_t from = 0; (from = text.find("://", from)) != std::string::npos;) {
    std::size_t start = from + 3;
    std::size_t end = text.find_first_of(" \t\r\n'\"<>", start);
    std::size_t at = text.rfind('@', end == std::string::npos ? text.size() : end);
    if (at != std::string::npos && at >= start) {
      text.replace(start, at - start, "<redacted>");
      start += 10;
    }
    from = start;
  }
  return text;
}

std::optional<std::string> url_password(const std::string& url) {
  auto sep = url.find("://");
  if (sep == std::string::npos)
    return std::nullopt;
  auto at = url.rfind('@');
  if (at == std::string::npos || at < sep + 3)
    return std::nullopt;
  auto colon = url.find(':', sep + 3);
  if (colon == std::string::npos || colon > at)
    return std::nullopt;
  return url.substr(colon + 1, at - colon - 1);
}

std::string invalid_proxy_url(const std::string& url) {
  auto sep = url.find("://");
  if (sep == std::string::npos)
    return "it has no scheme (write http://host:port)";
  std::string scheme = to_lower(url.substr(0, sep));
  if (scheme != "http" && scheme != "https" && scheme != "socks4" && scheme != "socks4a" && scheme != "socks5" &&
      scheme != "socks5h")
    return "scheme \"" + scheme + "\" is not http, https, socks4, socks4a, socks5 or socks5h";
  std::string rest = url.substr(sep + 3);
  if (auto at = rest.rfind('@'); at != std::string::npos) {
    if (rest.find_first_of("/?# ") < at)
      return "write '/', '?', '#' and spaces in the user name or password percent-encoded (%2F, %3F, %23, %20)";
    rest = rest.substr(at + 1);
  }
  rest = rest.substr(0, rest.find('/'));
  std::string host = rest, port;
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string::npos)
      return "unclosed '[' in the host";
    host = rest.substr(0, close + 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':')
        return "unexpected text after the host";
      port = rest.substr(close + 2);
    }
  } else if (auto colon = rest.find(':'); colon != std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty() || host == "[]" || (host.front() != '[' && host.find_first_of(" []") != std::string::npos))
    return "no valid host";
  if (!port.empty() || (rest.front() != '[' && rest.find(':') != std::string::npos)) {
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
      return "the port is not a number";
    long p = std::stol(port);
    if (p < 1 || p > 65535)
      return "the port is not between 1 and 65535";
  }
  return {};
}

/// The URL of rel="next" in a Link header, or "". A header may carry several links
/// ("<a>; rel=\"prev\" , <b>; rel=\"next\"", Harbor's order): each link's own parameters decide.
std::string next_link(const std::string& link) {
  for (std::size_t open = link.find('<'); open != std::string::npos;) {
    auto close = link.find('>', open);
    if (close == std::string::npos)
      return {};
    auto following = link.find('<', close);
    std::string params = link.substr(close + 1, following == std::string::npos ? std::string::npos : following - close - 1);
    if (params.find("rel=\"next\"") != std::string::npos || params.find("rel=next") != std::string::npos)
      return link.substr(open + 1, close - open - 1);
    open = following;
  }
  return {};
}

HostPort split_host_port(const std::string& authority, const std::string& default_port) {
  const auto colon = authority.rfind(':');
  const bool bracketed = !authority.empty() && authority.front() == '[';
  const bool has_port = colon != std::string::npos && authority.back() != ']' &&
                        (bracketed ? authority.rfind(']') < colon : authority.find(':') == colon);
  if (!has_port)
    return {authority, default_port};
  return {authority.substr(0, colon), authority.substr(colon + 1)};
}

} // namespace http
