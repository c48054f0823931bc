#include "http/url.hpp"

#include <algorithm>
#include <cctype>

namespace http {

bool parse_url(std::string_view text, Url& out) {
  auto sep = text.find("://");
  if (sep == std::string_view::npos)
    return false;
  std::string scheme(text.substr(0, sep));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(), ::tolower);
  if (scheme != "http" && scheme != "https")
    return false;
  auto rest = text.substr(sep + 3);
  auto slash = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, slash);
  if (auto at = authority.rfind('@'); at != std::string_view::npos)
    authority = authority.substr(at + 1);
  if (authority.empty())
    return false;
  out.scheme = scheme;
  out.authority.assign(authority);
  std::transform(out.authority.begin(), out.authority.end(), out.authority.begin(), ::tolower);
  out.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (out.path.empty() || out.path[0] != '/')
    out.path = "/" + out.path;
  return true;
}

std::string resolve_url(const std::string& base, const std::string& location) {
  Url parsed;
  if (parse_url(location, parsed))
    return location;
  Url b;
  if (!parse_url(base, b))
    return location;
  if (location.rfind("//", 0) == 0)
    return b.scheme + ":" + location;
  if (!location.empty() && location[0] == '/')
    return b.scheme + "://" + b.authority + location;
  // Relative path: replace the last path segment of the base (query dropped).
  std::string dir = b.path.substr(0, b.path.find('?'));
  dir = dir.substr(0, dir.rfind('/') + 1);
  return b.scheme + "://" + b.authority + dir + location;
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

} // namespace http
