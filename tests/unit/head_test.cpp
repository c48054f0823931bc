#include "http/client.hpp"
#include "registry/client.hpp"

#include <doctest/doctest.h>

namespace {
const std::string d1 = "sha256:" + std::string(64, 'a');
const std::string d2 = "sha256:" + std::string(64, 'b');

http::Response answer(long status, http::Headers headers = {}) {
  http::Response r;
  r.status = status;
  r.headers = std::move(headers);
  return r;
}
} // namespace

TEST_CASE("http::header_of ignores the case of names") {
  http::Headers h{{"If-None-Match", "\"x\""}, {"accept", "a"}};
  CHECK(http::header_of(h, "if-none-match") == "\"x\"");
  CHECK(http::header_of(h, "ACCEPT") == "a");
  CHECK(http::header_of(h, "If-None") == "");
}

TEST_CASE("registry::Registry conditional HEADs (If-None-Match)") {
  http::Client client;
  registry::RegistryOptions options;
  options.host = "registry.test:5000";
  options.insecure = true;
  registry::Registry reg(client, options);

  auto conditional = reg.head_request("ns/app", "1.0", d1);
  REQUIRE(conditional);
  CHECK(conditional->header("if-none-match") == "\"" + d1 + "\"");
  auto plain = reg.head_request("ns/app", "1.0");
  REQUIRE(plain);
  CHECK(plain->header("if-none-match").empty());
  auto not_a_digest = reg.head_request("ns/app", "1.0", "latest");
  REQUIRE(not_a_digest);
  CHECK(not_a_digest->header("if-none-match").empty());
  // By digest: distribution would answer 304 to a digest it does not have.
  auto by_digest = reg.head_request("ns/app", d1, d1);
  REQUIRE(by_digest);
  CHECK(by_digest->header("if-none-match").empty());
  CHECK_FALSE(reg.read_head(*by_digest, answer(304)).head);

  SUBCASE("304 to a conditional HEAD: the tag is at the digest named") {
    auto a = reg.read_head(*conditional, answer(304));
    REQUIRE(a.head);
    REQUIRE(*a.head);
    CHECK((*a.head)->digest == d1);
    CHECK((*a.head)->media_type.empty());
    CHECK_FALSE(a.failed);
  }
  SUBCASE("200 to a conditional HEAD: another digest, read from the headers") {
    auto a = reg.read_head(*conditional, answer(200, {{"docker-content-digest", d2},
                                                      {"content-type", "application/vnd.oci.image.manifest.v1+json"}}));
    REQUIRE(a.head);
    REQUIRE(*a.head);
    CHECK((*a.head)->digest == d2);
    CHECK((*a.head)->media_type == "application/vnd.oci.image.manifest.v1+json");
  }
  SUBCASE("304 to a HEAD that named no digest settles nothing") {
    auto a = reg.read_head(*plain, answer(304));
    CHECK_FALSE(a.head);
  }
  SUBCASE("404: absent") {
    auto a = reg.read_head(*conditional, answer(404));
    REQUIRE(a.head);
    CHECK_FALSE(*a.head);
  }
}
