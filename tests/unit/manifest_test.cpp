#include "registry/digest.hpp"
#include "registry/manifest.hpp"

#include <doctest/doctest.h>

using registry::parse_manifest;

namespace {
const std::string d1 = "sha256:" + std::string(64, 'a');
const std::string d2 = "sha256:" + std::string(64, 'b');
} // namespace

TEST_CASE("registry::parse_manifest") {
  SUBCASE("OCI image manifest") {
    std::string body = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
      "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" + d1 + R"(","size":10},
      "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" + d2 + R"(","size":20}]})";
    auto m = parse_manifest(body, "application/vnd.oci.image.manifest.v1+json; charset=utf-8");
    REQUIRE(m);
    CHECK_FALSE(m->is_index);
    CHECK(m->config->digest == d1);
    REQUIRE(m->layers.size() == 1);
    CHECK(m->layers[0].size == 20);
  }
  SUBCASE("Docker manifest list, type from the body") {
    std::string body = R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json",
      "manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":")" + d1 +
                       R"(","size":5,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}}]})";
    auto m = parse_manifest(body, "");
    REQUIRE(m);
    CHECK(m->is_index);
    REQUIRE(m->manifests.size() == 1);
    CHECK(m->manifests[0].platform->to_string() == "linux/arm64/v8");
  }
  SUBCASE("foreign layers are recognised") {
    registry::Descriptor d;
    d.media_type = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    CHECK(d.non_distributable());
    d.media_type = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    CHECK(d.non_distributable());
    d.media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
    CHECK_FALSE(d.non_distributable());
  }
  SUBCASE("schema 1 is unsupported, clearly") {
    auto m = parse_manifest(R"({"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]})",
                            "application/vnd.docker.distribution.manifest.v1+prettyjws");
    REQUIRE_FALSE(m);
    CHECK(m.error().kind == http::ErrorKind::unsupported);
    CHECK(m.error().message.find("schema 1") != std::string::npos);
  }
  SUBCASE("malformed manifests") {
    CHECK_FALSE(parse_manifest("not json", ""));
    CHECK_FALSE(parse_manifest(R"({"schemaVersion": 24E444444444444})", "")); // found by fuzz_manifest
    CHECK_FALSE(parse_manifest("[]", ""));
    CHECK_FALSE(parse_manifest(R"({"mediaType":"application/vnd.oci.image.index.v1+json"})", ""));
    auto bad_digest = parse_manifest(R"({"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"digest":"sha256:xyz","size":1}]})", "");
    REQUIRE_FALSE(bad_digest);
    CHECK(bad_digest.error().message.find("manifests[0].digest") != std::string::npos);
    CHECK_FALSE(parse_manifest(R"({"config":{"digest":")" + d1 + R"(","size":-1},"layers":[]})", ""));
    auto unknown = parse_manifest(R"({"mediaType":"application/x-weird"})", "application/x-weird");
    REQUIRE_FALSE(unknown);
    CHECK(unknown.error().kind == http::ErrorKind::unsupported);
  }
}

TEST_CASE("registry::digest") {
  CHECK(registry::sha256_digest("") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  registry::Digester h;
  h.update("hello ");
  h.update("world");
  CHECK(h.finish() == registry::sha256_digest("hello world"));
  CHECK(registry::valid_digest(d1));
  CHECK_FALSE(registry::valid_digest("sha256:" + std::string(64, 'A')));
  CHECK_FALSE(registry::valid_digest("sha256:abc"));
  CHECK_FALSE(registry::valid_digest("md5:" + std::string(32, 'a')));
}

TEST_CASE("registry::is_image_manifest_type: only the types known to be one image's") {
  CHECK(registry::is_image_manifest_type("application/vnd.oci.image.manifest.v1+json"));
  CHECK(registry::is_image_manifest_type("application/vnd.docker.distribution.manifest.v2+json"));
  CHECK_FALSE(registry::is_image_manifest_type("application/vnd.oci.image.index.v1+json"));
  CHECK_FALSE(registry::is_image_manifest_type("application/vnd.docker.distribution.manifest.list.v2+json"));
  CHECK_FALSE(registry::is_image_manifest_type("application/json")); // generic: read the manifest to know
  CHECK_FALSE(registry::is_image_manifest_type(""));                 // a 304 names none
}
