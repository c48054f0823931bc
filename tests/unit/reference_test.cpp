#include "registry/reference.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <utility>
#include <vector>

using registry::Reference;

namespace {
nlohmann::json fixture() {
  std::ifstream in(std::string(IM_FIXTURES) + "/image-refs/normalize.json");
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}
} // namespace

TEST_CASE("registry::Reference::parse_normalized against distribution's tables") {
  auto f = fixture();
  SUBCASE("valid names") {
    REQUIRE(f["valid_names"].size() > 10);
    for (const auto& name : f["valid_names"]) {
      CAPTURE(name.get<std::string>());
      CHECK(Reference::parse_normalized(name.get<std::string>()).has_value());
    }
  }
  SUBCASE("invalid names") {
    REQUIRE(f["invalid_names"].size() > 5);
    for (const auto& name : f["invalid_names"]) {
      CAPTURE(name.get<std::string>());
      auto r = Reference::parse_normalized(name.get<std::string>());
      CHECK_FALSE(r.has_value());
      if (!r)
        CHECK(r.error().message.find(name.get<std::string>()) != std::string::npos);
    }
  }
  SUBCASE("normalized forms") {
    REQUIRE(f["normalize"].size() > 5);
    for (const auto& row : f["normalize"]) {
      CAPTURE(row["input"].get<std::string>());
      auto r = Reference::parse_normalized(row["input"].get<std::string>());
      REQUIRE(r.has_value());
      CHECK(r->normalized() == row["expected"].get<std::string>());
    }
  }
}

TEST_CASE("registry::Reference::parse_normalized keeps tag and digest") {
  auto r = Reference::parse_normalized("gcr.io/library/busybox:1.36@sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582");
  REQUIRE(r);
  CHECK(r->registry == "gcr.io");
  CHECK(r->repository == "library/busybox");
  CHECK(r->tag == "1.36");
  CHECK(r->to_string() == "gcr.io/library/busybox:1.36@sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582");
  CHECK(r->reference() == "sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582");
  auto hub = Reference::parse_normalized("index.docker.io/nginx");
  REQUIRE(hub);
  CHECK(hub->to_string() == "docker.io/library/nginx");
}

TEST_CASE("registry::Reference::parse_explicit") {
  struct Row {
    const char* input;
    const char* registry;
    const char* repository;
    const char* tag;
    bool ok;
  };
  const Row rows[] = {
      {"swr.example.com/org/app:1.0", "swr.example.com", "org/app", "1.0", true},
      {"127.0.0.1:5000/a/b/c", "127.0.0.1:5000", "a/b/c", "", true},
      {"localhost/ns/app:v", "localhost", "ns/app", "v", true},
      {"[::1]:5000/ns/app", "[::1]:5000", "ns/app", "", true},
      {"ns/app:1", "", "ns/app", "1", true},        // no registry: caller applies defaults
      {"app", "", "app", "", true},
      {"Reg.Example.com/ns/app", "Reg.Example.com", "ns/app", "", true},
      {"reg.io/NS/app", "", "", "", false},         // upper-case repository
      {"reg.io/ns/app:-bad", "", "", "", false},    // tag may not start with '-'
      {"reg.io/ns/app@sha256:abc", "", "", "", false},
      {"https://reg.io/ns/app", "", "", "", false},
      {"reg.io//app", "", "", "", false},
      {"", "", "", "", false},
      {"reg.io/ns/app tag", "", "", "", false},
  };
  for (const auto& row : rows) {
    CAPTURE(row.input);
    auto r = Reference::parse_explicit(row.input);
    REQUIRE(r.has_value() == row.ok);
    if (!row.ok)
      continue;
    CHECK(r->registry == row.registry);
    CHECK(r->repository == row.repository);
    CHECK(r->tag == row.tag);
  }
}

TEST_CASE("registry: credentials written into a reference are refused and never repeated") {
  // {text, a fragment of the secret that must not appear}
  const std::vector<std::pair<const char*, const char*>> cases = {
      {"alice:pwsecret@127.0.0.1:1/ns/app:1", "pwsecret"},
      {"https://alice:pwsecret@reg.io/ns/app", "pwsecret"},
      {"HTTPS://alice:pwsecret@reg.io/ns/app", "pwsecret"},
      {"alice:pwsecret@reg.io", "pwsecret"},
      {"alice@reg.io/ns/app", "alice"},
      {"alice:pa/ss@reg.io/app", "pa/ss"},          // '/' in a password (base64 tokens)
      {"alice:p@ssw0rd@reg.io/app", "ssw0rd"},       // '@' in a password
      {"//alice:pwsecret@reg.io/x", "pwsecret"},
      {"https:/alice:pwsecret@reg.io/x", "pwsecret"},
      {"ghp_tokentokentoken@ghcr.io", "ghp_token"},  // a token alone, no ':' and no path
      {"alice:pwsecret@reg.io:5000", "pwsecret"},    // "reg.io:5000" has a digest's grammar
      {"alice:pwsecret@reg.io/ns/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "pwsecret"},
  };
  for (const auto& [text, secret] : cases) {
    const std::string shown = text;
    CAPTURE(shown);
    CHECK(registry::has_userinfo(text));
    CHECK(registry::without_userinfo(text).find(secret) == std::string::npos);
    CHECK(registry::without_userinfo(text).find("<redacted>@") != std::string::npos);
    for (auto parsed : {Reference::parse_normalized(text), Reference::parse_explicit(text)}) {
      REQUIRE_FALSE(parsed);
      CAPTURE(parsed.error().message);
      CHECK(parsed.error().message.find(secret) == std::string::npos);
      CHECK(parsed.error().message.find("cannot hold credentials") != std::string::npos);
    }
  }
  CHECK(registry::without_userinfo("https://alice:pw@reg.io/x") == "https://<redacted>@reg.io/x");
  CHECK(registry::without_userinfo("alice:p@ss@reg.io/x") == "<redacted>@reg.io/x");
  // Digests, good or of a digest's shape, are not credentials; nor is a layout's file name.
  for (const char* text : {"alpine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                           "reg.io/ns/app@sha256:abc", "alpine:3@sha256:abc", "reg.io/a@blake3:c",
                           "reg.io:5000/a/b:1@sha512:abc", "oci:backup@2024:v1", "oci:/srv/x@y"}) {
    CAPTURE(text);
    CHECK_FALSE(registry::has_userinfo(text));
    CHECK(registry::without_userinfo(text) == text);
  }
  // A bad digest is refused without echoing what comes before its '@'.
  auto junk = Reference::parse_normalized("alpine@junk");
  REQUIRE_FALSE(junk);
  CHECK(junk.error().message.find("alpine") == std::string::npos);
  // Control characters are escaped, not written into a log line.
  auto nl = Reference::parse_normalized("reg.io/a\nFAKE LOG LINE");
  REQUIRE_FALSE(nl);
  CHECK(nl.error().message.find('\n') == std::string::npos);
  CHECK(nl.error().message.find("\\x0a") != std::string::npos);
}

TEST_CASE("registry::valid_tag and valid_registry") {
  CHECK(registry::valid_tag("v1.0_rc-1"));
  CHECK(registry::valid_tag("_x"));
  CHECK_FALSE(registry::valid_tag(".x"));
  CHECK_FALSE(registry::valid_tag(std::string(129, 'a')));
  CHECK(registry::valid_tag(std::string(128, 'a')));
  CHECK(registry::valid_registry("a-b.example.com:443"));
  CHECK_FALSE(registry::valid_registry("-a.example.com"));
  CHECK_FALSE(registry::valid_registry("a.example.com:"));
  CHECK_FALSE(registry::valid_registry("[fe80::1%eth0]:5000"));
}

TEST_CASE("registry::referrers_tag and is_referrers_tag") {
  const std::string hex = "0e548f5a2742428390311b43af9f774b16810152be1a0e32c56516995548f062";
  CHECK(registry::referrers_tag("sha256:" + hex) == "sha256-" + hex);
  CHECK(registry::valid_tag(registry::referrers_tag("sha512:" + std::string(128, 'a')))); // cut to 128 characters
  CHECK(registry::is_referrers_tag("sha256-" + hex));
  CHECK(registry::is_referrers_tag("sha256-" + hex + ".sig"));
  CHECK(registry::is_referrers_tag("sha256-" + hex + ".att"));
  CHECK_FALSE(registry::is_referrers_tag("sha256-" + hex + "x"));            // not a suffix after '.'
  CHECK_FALSE(registry::is_referrers_tag("sha256-" + hex.substr(1)));        // 63 digits
  CHECK_FALSE(registry::is_referrers_tag("sha256-" + std::string(64, 'G'))); // not hex
  CHECK_FALSE(registry::is_referrers_tag("sha256-" + std::string(64, 'A'))); // upper-case hex is no digest
  CHECK_FALSE(registry::is_referrers_tag("v1.2.3"));
}

TEST_CASE("registry::Reference::parse_layout") {
  struct Row {
    const char* text;
    bool ok;
    const char* layout;
    const char* tag;
    const char* digest;
  };
  const std::string d = "sha256:" + std::string(64, 'a');
  const std::string with_digest = "oci:/srv/export:v1@" + d;
  const Row rows[] = {
      {"oci:/srv/export", true, "/srv/export", "", ""},
      {"oci:/srv/export/", true, "/srv/export", "", ""},
      {"oci:/srv/export:v1.2", true, "/srv/export", "v1.2", ""},
      {"oci:relative/dir:latest", true, "relative/dir", "latest", ""},
      {"oci:/srv/a:b/c", true, "/srv/a:b/c", "", ""}, // a ':' inside the path is part of it
      {with_digest.c_str(), true, "/srv/export", "v1", d.c_str()},
      {"oci:", false, "", "", ""},
      {"oci::v1", false, "", "", ""},
      {"oci:/srv/export:bad tag", false, "", "", ""},
      {"docker://x", false, "", "", ""},
      {"oci:5000/ns/app:v1", false, "", "", ""}, // a registry host "oci" with a port
  };
  for (const auto& row : rows) {
    CAPTURE(row.text);
    auto r = registry::Reference::parse_layout(row.text);
    REQUIRE(r.has_value() == row.ok);
    if (!row.ok)
      continue;
    CHECK(r->layout == row.layout);
    CHECK(r->tag == row.tag);
    CHECK(r->digest == row.digest);
    CHECK(r->registry.empty());
    CHECK(r->name() == std::string("oci:") + row.layout);
  }
  CHECK(registry::Reference::is_layout("oci:/srv/x"));
  CHECK(registry::Reference::is_layout("oci:5000")); // a directory named 5000
  CHECK(registry::Reference::is_layout("oci:./5000/x"));
  CHECK_FALSE(registry::Reference::is_layout("oci:5000/ns/app:v1")); // the registry host "oci", port 5000
  CHECK_FALSE(registry::Reference::is_layout("registry.io/oci:x"));
}
