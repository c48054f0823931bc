// http::invalid_request: the last check before any request is sent (issue 17, class 1 and 2).
#include "http/client.hpp"

#include <doctest/doctest.h>

namespace {
http::Request get(std::string url) {
  http::Request r;
  r.url = std::move(url);
  return r;
}
} // namespace

TEST_CASE("http::invalid_request: URLs") {
  const struct {
    const char* url;
    bool ok;
  } cases[] = {
      {"https://r.io/v2/org/app/manifests/v1", true},
      {"http://127.0.0.1:5000/v2/org/app/blobs/uploads/abc?_state=x.y%3D&digest=sha256%3Aab", true},
      {"https://r.io/v2/org/app/manifests/v1.2..3", true}, // ".." inside a segment is no dot segment
      {"https://r.io/v2/org/app/manifests/../../victim/manifests/latest", false},
      {"https://r.io/v2/org/app/manifests/%2e%2e/%2E%2E/victim/manifests/latest", false},
      {"https://r.io/v2/org/app/manifests/.%2e/x", false},
      {"https://r.io/v2/org/./app/manifests/x", false},
      {"https://r.io/v2/org/app/manifests/..", false},
      {"https://r.io/v2/org/app/manifests/a b", false},
      {"https://r.io/v2/org/app/manifests/a\r\nb", false},
      {"https://r.io/v2/org/app/manifests/\x1b[2J", false},
      {"https://r.io/v2/org/app/manifests/caf\xc3\xa9", false},
      {"ftp://r.io/v2/", false},
      {"/v2/relative", false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.url);
    CHECK(http::invalid_request(get(c.url)).empty() == c.ok);
  }
}

TEST_CASE("http::invalid_request: headers and methods") {
  auto r = get("https://r.io/v2/");
  r.headers = {{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}, {"Authorization", "Bearer a.b-c_d~e+f/g="}};
  CHECK(http::invalid_request(r).empty());
  for (const char* value : {"a\r\nDELETE /v2/x HTTP/1.1", "a\nb", "a\rb", "a\x7f"}) {
    auto bad = r;
    bad.headers.emplace_back("Content-Type", value);
    CAPTURE(value);
    CHECK(http::invalid_request(bad).find("control character") != std::string::npos);
  }
  auto nul = r;
  nul.headers.emplace_back("X-A", std::string("a\0b", 3));
  CHECK(!http::invalid_request(nul).empty());
  for (const char* name : {"", "Bad Name", "Bad:Name", "X\r\nY"}) {
    auto bad = r;
    bad.headers.emplace_back(name, "v");
    CAPTURE(name);
    CHECK(!http::invalid_request(bad).empty());
  }
  auto tab = r;
  tab.headers.emplace_back("X-Tab", "a\tb"); // HTAB is allowed in a field value
  CHECK(http::invalid_request(tab).empty());
  auto method = r;
  method.method = "GET /x HTTP/1.1\r\n";
  CHECK(!http::invalid_request(method).empty());
}

TEST_CASE("http::Client refuses to send what invalid_request refuses") {
  http::Client client;
  auto r = get("http://127.0.0.1:1/v2/org/app/manifests/x");
  r.headers.emplace_back("Content-Type", "a\r\nX-Smuggled: 1");
  auto sent = client.send(r);
  REQUIRE(!sent);
  CHECK(sent.error().kind == http::ErrorKind::invalid);
  CHECK(sent.error().message.find("refusing to send") != std::string::npos);
  CHECK(sent.error().message.find('\r') == std::string::npos);
  auto traversal = client.send(get("http://127.0.0.1:1/v2/org/app/manifests/../../victim/manifests/x"));
  REQUIRE(!traversal);
  CHECK(traversal.error().kind == http::ErrorKind::invalid);
}
