#include "http/base64.hpp"
#include "registry/auth.hpp"

#include <doctest/doctest.h>

using registry::parse_challenges;

TEST_CASE("registry::parse_challenges") {
  SUBCASE("docker hub bearer") {
    auto r = parse_challenges(R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull")");
    REQUIRE(r);
    REQUIRE(r->size() == 1);
    CHECK((*r)[0].scheme == "bearer");
    CHECK((*r)[0].params.at("realm") == "https://auth.docker.io/token");
    CHECK((*r)[0].params.at("service") == "registry.docker.io");
    CHECK((*r)[0].params.at("scope") == "repository:library/nginx:pull");
  }
  SUBCASE("several scopes in one quoted value and insufficient_scope") {
    auto r = parse_challenges(R"(Bearer realm="https://t/token", service="reg", scope="repository:a/b:pull,push repository:c/d:pull", error="insufficient_scope")");
    REQUIRE(r);
    CHECK((*r)[0].params.at("scope") == "repository:a/b:pull,push repository:c/d:pull");
    CHECK((*r)[0].params.at("error") == "insufficient_scope");
  }
  SUBCASE("basic, case-insensitive scheme and names") {
    auto r = parse_challenges(R"(BASIC Realm="basic-realm")");
    REQUIRE(r);
    CHECK((*r)[0].scheme == "basic");
    CHECK((*r)[0].params.at("realm") == "basic-realm");
  }
  SUBCASE("two challenges in one header") {
    auto r = parse_challenges(R"(Basic realm="r1", Bearer realm="https://t/token",service="s")");
    REQUIRE(r);
    REQUIRE(r->size() == 2);
    CHECK((*r)[0].scheme == "basic");
    CHECK((*r)[1].scheme == "bearer");
    CHECK((*r)[1].params.at("service") == "s");
  }
  SUBCASE("escaped quotes and unquoted tokens") {
    auto r = parse_challenges(R"(Bearer realm="https://t/a\"b", service=reg.example.com)");
    REQUIRE(r);
    CHECK((*r)[0].params.at("realm") == "https://t/a\"b");
    CHECK((*r)[0].params.at("service") == "reg.example.com");
  }
  SUBCASE("errors") {
    CHECK_FALSE(parse_challenges(""));
    CHECK_FALSE(parse_challenges(R"(Bearer realm="unterminated)"));
    CHECK_FALSE(parse_challenges("=broken"));
  }
}

TEST_CASE("registry::Credentials::basic_header") {
  registry::Credentials c("alice", "open sesame");
  CHECK(c.basic_header() == "Basic YWxpY2U6b3BlbiBzZXNhbWU=");
  CHECK(http::base64_encode("a") == "YQ==");
  CHECK(http::base64_encode("ab") == "YWI=");
  CHECK(http::base64_encode("abc") == "YWJj");
  CHECK(registry::Credentials().anonymous());
  CHECK(http::base64_decode("YWxpY2U6b3BlbiBzZXNhbWU=") == "alice:open sesame");
  CHECK(http::base64_decode("YQ") == "a"); // padding optional
  CHECK(http::base64_decode("-_8") == http::base64_decode("+/8")); // URL-safe alphabet
  CHECK_FALSE(http::base64_decode("a$b="));
  CHECK(http::base64_decode("YQ=") == "a");           // short padding, as before
  CHECK(http::base64_decode(" YW\nJj ") == "abc");    // white space ignored
  CHECK(http::base64_decode("") == "");
  CHECK_FALSE(http::base64_decode("YWJj="));          // padding beyond the last group
  CHECK_FALSE(http::base64_decode("YWJjZ"));          // a lone trailing character
  CHECK_FALSE(http::base64_decode("YQ==YQ=="));       // data after padding
  std::string all;
  for (int i = 0; i < 256; ++i)
    all += static_cast<char>(i);
  for (std::size_t n = 0; n <= all.size(); n += 37)
    CHECK(http::base64_decode(http::base64_encode(all.substr(0, n))) == all.substr(0, n));
}
