#include "http/result.hpp"
#include "http/url.hpp"
#include "registry/client.hpp"

#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

TEST_CASE("http::resolve_url") {
  CHECK(http::resolve_url("http://r:5000/v2/a/blobs/uploads/", "/v2/a/blobs/uploads/u1?_state=x") ==
        "http://r:5000/v2/a/blobs/uploads/u1?_state=x");
  CHECK(http::resolve_url("https://r/v2/x", "https://cdn.example.com/blob?sig=1") == "https://cdn.example.com/blob?sig=1");
  CHECK(http::resolve_url("https://r/v2/x/y", "//cdn/z") == "https://cdn/z");
  CHECK(http::resolve_url("https://r/v2/x/y", "z") == "https://r/v2/x/z");
  CHECK(http::authority_of("https://User:pw@Reg.IO:443/v2/") == "reg.io:443");
  // RFC 3986 section 5.4's examples (the scheme made http: the base of a request is absolute http).
  const std::string base = "http://a/b/c/d;p?q";
  for (auto [ref, want] : std::vector<std::pair<std::string, std::string>>{{"g", "http://a/b/c/g"},
                                                                            {"./g", "http://a/b/c/g"},
                                                                            {"g/", "http://a/b/c/g/"},
                                                                            {"/g", "http://a/g"},
                                                                            {"//g", "http://g/"},
                                                                            {"?y", "http://a/b/c/d;p?y"},
                                                                            {"g?y", "http://a/b/c/g?y"},
                                                                            {"..", "http://a/b/"},
                                                                            {"../g", "http://a/b/g"},
                                                                            {"../..", "http://a/"},
                                                                            {"../../g", "http://a/g"},
                                                                            {"../../../g", "http://a/g"},
                                                                            {"/./g", "http://a/g"},
                                                                            {"/../g", "http://a/g"},
                                                                            {"g.", "http://a/b/c/g."},
                                                                            {"./../g", "http://a/b/g"},
                                                                            {"g/../h", "http://a/b/c/h"}})
    CHECK_MESSAGE(http::resolve_url(base, ref) == want, ref);
  // An absolute Location keeps its dot segments, so that invalid_request sees and refuses them.
  const std::string up = http::resolve_url("https://r/v2/a", "https://r/v2/a/../../victim/manifests/x");
  http::Request put;
  put.method = "PUT";
  put.url = up;
  CHECK_FALSE(http::invalid_request(put).empty());
  CHECK(http::resolve_url("not a url", "z") == "z");
}

TEST_CASE("http::parse_url reads a URL as libcurl will send it") {
  http::Url u;
  REQUIRE(http::parse_url("HTTPS://user:pw@Reg.Example.COM:5000/v2/a/tags/list?n=10&last=b#frag", u));
  CHECK(u.scheme == "https");
  CHECK(u.authority == "reg.example.com:5000"); // no userinfo, lower case
  CHECK(u.path == "/v2/a/tags/list?n=10&last=b"); // the fragment is never sent
  REQUIRE(http::parse_url("http://[::1]:8080", u));
  CHECK(u.authority == "[::1]:8080");
  CHECK(u.path == "/");
  REQUIRE(http::parse_url("http://r/v2/a/manifests/../../b/manifests/x", u));
  CHECK(u.path == "/v2/a/manifests/../../b/manifests/x"); // dot segments kept, for the caller to refuse
  REQUIRE(http::parse_url("http://[fe80::1%25eth0]:5000/v2/", u));
  CHECK(u.authority == "[fe80::1%25eth0]:5000"); // the zone picks the link: part of the authority
  REQUIRE(http::parse_url("HTTP:/r.io/v2/", u)); // as libcurl reads it
  CHECK(u.scheme == "http");
  CHECK(u.authority == "r.io");
  CHECK_FALSE(http::parse_url("ftp://r/x", u));
  CHECK_FALSE(http::parse_url("r:5000/v2/", u));
  CHECK_FALSE(http::parse_url("http://", u));
  CHECK_FALSE(http::parse_url("/v2/relative", u));
}

TEST_CASE("http::redact_url never shows query strings or userinfo") {
  CHECK(http::redact_url("https://u:p@s3.example.com/b?X-Amz-Signature=secret") == "https://s3.example.com/b?<redacted>");
  CHECK(http::redact_url("http://r/v2/") == "http://r/v2/");
}

TEST_CASE("http::redact_userinfo and invalid_proxy_url") {
  CHECK(http::redact_userinfo("Unsupported proxy syntax in 'http://u:s3cret@[bad'") ==
        "Unsupported proxy syntax in 'http://<redacted>@[bad'");
  CHECK(http::redact_userinfo("via http://u:p@h:1/x and socks5://a:b@c") == "via http://<redacted>@h:1/x and socks5://<redacted>@c");
  CHECK(http::redact_userinfo("'http://u:s3cr#t/?@proxy:1'") == "'http://<redacted>@proxy:1'"); // '#', '/', '?' in a password
  CHECK(http::redact_userinfo("http://host/path") == "http://host/path");
  CHECK(http::url_password("http://u:p#w@h:1") == std::optional<std::string>("p#w"));
  CHECK_FALSE(http::url_password("http://u@h:1"));
  CHECK_FALSE(http::url_password("http://h:1"));
  CHECK(http::redact_userinfo("no url here") == "no url here");
  CHECK(http::invalid_proxy_url("http://proxy.corp:3128").empty());
  CHECK(http::invalid_proxy_url("http://u:p@proxy.corp:3128/").empty());
  CHECK(http::invalid_proxy_url("socks5h://[::1]:1080").empty());
  CHECK(http::invalid_proxy_url("https://proxy.corp").empty());
  CHECK_FALSE(http::invalid_proxy_url("proxy.corp:3128").empty());
  CHECK_FALSE(http::invalid_proxy_url("ftp://proxy.corp:21").empty());
  CHECK_FALSE(http::invalid_proxy_url("http://u:p@[bad").empty());
  CHECK_FALSE(http::invalid_proxy_url("http://proxy:99999").empty());
  CHECK_FALSE(http::invalid_proxy_url("http://proxy:").empty());
  CHECK(http::invalid_proxy_url("http://u:s3cr#t@proxy:1").find("percent-encoded") != std::string::npos);
  CHECK(http::invalid_proxy_url("http://u:s3cr%23t@proxy:1").empty());
  CHECK(http::invalid_proxy_url("http://u:s3cret@proxy:0").find("s3cret") == std::string::npos);
}

TEST_CASE("http::next_link") {
  CHECK(http::next_link(R"(</v2/_catalog?last=b&n=2>; rel="next")") == "/v2/_catalog?last=b&n=2");
  // Harbor: prev first, joined by " , "
  CHECK(http::next_link(R"(</api/v2.0/projects/p/repositories?page=1&page_size=2>; rel="prev" , </api/v2.0/projects/p/repositories?page=3&page_size=2>; rel="next")") ==
        "/api/v2.0/projects/p/repositories?page=3&page_size=2");
  CHECK(http::next_link(R"(</a?page=1>; rel="prev")").empty()); // the last page
  CHECK(http::next_link("<https://r.io/v2/x/tags/list?n=1&last=a>; rel=next") == "https://r.io/v2/x/tags/list?n=1&last=a");
  CHECK(http::next_link("").empty());
  CHECK(http::next_link("<unterminated; rel=\"next\"").empty());
}

TEST_CASE("http::split_host_port") {
  auto check = [](const char* authority, const char* host, const char* port) {
    auto hp = http::split_host_port(authority, "443");
    CHECK_MESSAGE(hp.host == host, authority);
    CHECK_MESSAGE(hp.port == port, authority);
  };
  check("registry.example.com", "registry.example.com", "443");
  check("registry.example.com:5000", "registry.example.com", "5000");
  check("127.0.0.1:5000", "127.0.0.1", "5000");
  check("[::1]:5000", "[::1]", "5000");
  check("[::1]", "[::1]", "443");
  check("::1", "::1", "443");
}
