#pragma once
// Small URL helpers: registries answer with relative Locations and redirect blob downloads to other
// hosts (CDNs, object stores), so we must resolve, compare hosts, and redact before logging.

#include <optional>
#include <string>
#include <string_view>

namespace http {

/// The parts of an absolute http(s) URL that matter to us.
struct Url {
  std::string scheme;    ///< "http" or "https"
  std::string authority; ///< host[:port], without userinfo
  std::string path;      ///< path plus query, starting with '/'
};

/// An authority split: "host:5000" -> {"host", "5000"}; "[::1]:5000" -> {"[::1]", "5000"}; without a
/// port ("host", "[::1]", a bare IPv6 address "::1") the port is `default_port`.
struct HostPort {
  std::string host;
  std::string port;
};
HostPort split_host_port(const std::string& authority, const std::string& default_port);

/// Replaces the user information of every "scheme://user:password@" in a text (a libcurl message that
/// quotes a proxy URL, say) by "<redacted>", so credentials never reach a log.
std::string redact_userinfo(std::string text);

/// The password of a URL's user information ("scheme://user:password@host"), or nullopt.
std::optional<std::string> url_password(const std::string& url);

/// Checks a proxy URL: scheme http, https, socks4, socks4a, socks5 or socks5h, a host, an optional port
/// 1-65535. Returns "" or why it is not one (credentials never quoted).
std::string invalid_proxy_url(const std::string& url);

/// The URL of the link with rel="next" in a Link header (RFC 8288; several links allowed), or "".
std::string next_link(const std::string& link);

/// What parse_url does with "." and ".." path segments: keep them as written (so that a caller can
/// see and refuse them), or resolve them as libcurl does before it sends a request.
enum class DotSegments { keep, resolve };

/// Splits an absolute URL, as libcurl's own parser reads it; false when it is not absolute http(s).
bool parse_url(std::string_view text, Url& out, DotSegments dots = DotSegments::keep);

/// Resolves a Location header value against the URL of the request that produced it.
std::string resolve_url(const std::string& base, const std::string& location);

/// host[:port] of an absolute URL, lower-cased; empty when not absolute.
std::string authority_of(const std::string& url);

/// ASCII lower case (header names, hosts, schemes).
std::string to_lower(std::string_view text);

/// Percent-encodes everything but RFC 3986 unreserved characters.
std::string url_encode(std::string_view text);

/// Drops the query string and any userinfo: query strings carry signed-URL secrets and upload state.
std::string redact_url(const std::string& url);

} // namespace http
