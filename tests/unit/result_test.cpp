// Errors: which are retried, how a registry's error document becomes one line, which say a
// registry cannot be reached.
#include "http/result.hpp"
#include "registry/client.hpp"

#include <doctest/doctest.h>

TEST_CASE("http::Error::retryable") {
  CHECK(http::make_error(http::ErrorKind::network, "x").retryable());
  CHECK(http::make_error(http::ErrorKind::http_status, "x", 503).retryable());
  CHECK(http::make_error(http::ErrorKind::http_status, "x", 429).retryable());
  CHECK(http::make_error(http::ErrorKind::http_status, "x", 408).retryable());
  CHECK_FALSE(http::make_error(http::ErrorKind::http_status, "x", 400).retryable());
  CHECK_FALSE(http::make_error(http::ErrorKind::unauthorized, "x", 401).retryable());
  CHECK_FALSE(http::make_error(http::ErrorKind::tls, "x").retryable());
}

TEST_CASE("registry::registry_error reads the error JSON") {
  http::Response r;
  r.status = 404;
  r.body = R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]})";
  auto e = registry::registry_error("fetching manifest a/b:x", r);
  CHECK(e.kind == http::ErrorKind::not_found);
  CHECK(e.message == "fetching manifest a/b:x: HTTP 404 MANIFEST_UNKNOWN: manifest unknown");
  r.status = 429;
  r.body = "<html>\nslow down\n</html>";
  r.headers = {{"retry-after", "7"}};
  e = registry::registry_error("pushing", r);
  CHECK(e.retryable());
  CHECK(e.retry_after == std::chrono::seconds(7));
  CHECK(e.message.find('\n') == std::string::npos);
  r.status = 401;
  r.body = R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]})";
  CHECK(registry::registry_error("x", r).kind == http::ErrorKind::unauthorized);
}

TEST_CASE("http::unreachable_address") {
  CHECK(http::unreachable_address("checking manifest: registry r:1: HEAD http://127.0.0.1:1/v2/a/manifests/1: Failed to "
                                  "connect to 127.0.0.1 port 1 after 4 ms: Couldn't connect to server") == "127.0.0.1:1");
  CHECK(http::unreachable_address("GET https://nosuch.invalid/v2/: Could not resolve host: nosuch.invalid") == "nosuch.invalid");
  CHECK(http::unreachable_address("HTTP 503 Service Unavailable").empty());
  CHECK(http::unreachable_address("Connection reset by peer").empty());
}
