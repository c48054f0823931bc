#include "http/result.hpp"
#include "http/url.hpp"
#include "registry/client.hpp"

#include <doctest/doctest.h>

TEST_CASE("http::resolve_url") {
  CHECK(http::resolve_url("http://r:5000/v2/a/blobs/uploads/", "/v2/a/blobs/uploads/u1?_state=x") ==
        "http://r:5000/v2/a/blobs/uploads/u1?_state=x");
  CHECK(http::resolve_url("https://r/v2/x", "https://cdn.example.com/blob?sig=1") == "https://cdn.example.com/blob?sig=1");
  CHECK(http::resolve_url("https://r/v2/x/y", "//cdn/z") == "https://cdn/z");
  CHECK(http::resolve_url("https://r/v2/x/y", "z") == "https://r/v2/x/z");
  CHECK(http::authority_of("https://User:pw@Reg.IO:443/v2/") == "reg.io:443");
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
