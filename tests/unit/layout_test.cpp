// registry::Layout on its own: an OCI image layout written as a destination and read back as a source,
// and what a tampered layout gets (bytes that do not hash to their name, symlinks, broken index.json).

#include "registry/layout.hpp"

#include "fake_store.hpp"
#include "temp_dir.hpp"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void spit(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

/// Copies the image `tag` of `backend`'s repository "app" into `layout` (blobs, then the manifest).
void copy_image(test::Backend& backend, registry::Layout& layout, const std::string& tag) {
  test::FakeStore source(std::shared_ptr<test::Backend>(&backend, [](test::Backend*) {}));
  auto m = source.get_manifest("app", tag);
  REQUIRE(m);
  auto j = nlohmann::json::parse(m->bytes);
  std::vector<nlohmann::json> blobs = {j["config"]};
  for (const auto& l : j["layers"])
    blobs.push_back(l);
  for (const auto& b : blobs) {
    registry::Descriptor d;
    d.digest = b["digest"];
    d.size = b["size"];
    auto copied = layout.copy_blob_from(source, "app", "ignored", d);
    REQUIRE(copied);
    CHECK(*copied == static_cast<std::uint64_t>(d.size));
  }
  REQUIRE(layout.put_manifest("ignored", tag, *m));
}

} // namespace

TEST_CASE("registry::Layout: a destination written, then read back as a source") {
  test::TempDir d;
  test::Backend backend("src.example");
  const std::string digest = backend.add_image("app", "v1", {"layer one", "layer two"});
  backend.add_image("app", "v2", {"layer one", "layer three"});
  const fs::path dir = d.path() / "export";
  registry::Layout layout(dir.string());
  CHECK(layout.host() == "oci:" + dir.string());

  // No layout yet: nothing to list, and no manifest (not an error: a first copy).
  CHECK(layout.list_tags("x").error().kind == http::ErrorKind::not_found);
  auto none = layout.head_manifest("x", "v1");
  REQUIRE(none);
  CHECK_FALSE(*none);

  copy_image(backend, layout, "v1");
  copy_image(backend, layout, "v2");
  CHECK(slurp(dir / "oci-layout") == R"({"imageLayoutVersion":"1.0.0"})");
  auto tags = layout.list_tags("x");
  REQUIRE(tags);
  CHECK(*tags == std::vector<std::string>{"v1", "v2"});

  auto head = layout.head_manifest("x", "v1");
  REQUIRE(head);
  REQUIRE(*head);
  CHECK((*head)->digest == digest);
  CHECK((*head)->media_type == registry::media::oci_manifest);
  auto m = layout.get_manifest("x", "v1");
  REQUIRE(m);
  CHECK(m->digest == digest);
  CHECK(layout.get_manifest("x", digest)->bytes == m->bytes); // by digest too
  CHECK(layout.get_manifest("x", "v9").error().kind == http::ErrorKind::not_found);

  // Blobs are files named by their digest, streamed back as stored.
  const std::string layer = registry::sha256_digest("layer three");
  REQUIRE(layout.blob_file(layer));
  CHECK(slurp(*layout.blob_file(layer)) == "layer three");
  CHECK(layout.blob_exists("x", layer).value());
  std::string streamed;
  registry::Descriptor ld;
  ld.digest = layer;
  ld.size = 11;
  REQUIRE(layout.read_blob("x", ld, [&](std::string_view c) -> http::Status {
    streamed += c;
    return {};
  }));
  CHECK(streamed == "layer three");

  // A tag written again points at the new manifest; index.json keeps one entry per name.
  auto v2 = layout.get_manifest("x", "v2");
  REQUIRE(layout.put_manifest("x", "v1", *v2));
  CHECK(layout.head_manifest("x", "v1").value()->digest == v2->digest);
  auto index = nlohmann::json::parse(slurp(dir / "index.json"));
  CHECK(index["manifests"].size() == 2);
  CHECK(*layout.list_tags("x") == std::vector<std::string>{"v2", "v1"});
}

TEST_CASE("registry::Layout refuses what would leave a wrong or unsafe layout") {
  test::TempDir d;
  test::Backend backend("src.example");
  backend.add_image("app", "v1", {"layer one"});
  registry::Layout layout((d.path() / "export").string());
  test::FakeStore source(std::shared_ptr<test::Backend>(&backend, [](test::Backend*) {}));

  // A blob whose bytes are not what its digest says is not stored, nor left half-written.
  const std::string digest = registry::sha256_digest("layer one");
  backend.blobs[digest] = "layer 0ne";
  registry::Descriptor bd;
  bd.digest = digest;
  bd.size = 9;
  auto bad = layout.copy_blob_from(source, "app", "x", bd);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().kind == http::ErrorKind::digest_mismatch);
  CHECK_FALSE(layout.blob_exists("x", digest).value());
  CHECK(fs::is_empty(d.path() / "export/blobs/sha256")); // no temporary file left behind
  // More bytes than the descriptor says: cut off, not stored.
  backend.blobs[digest] = "layer one, and more";
  CHECK(layout.copy_blob_from(source, "app", "x", bd).error().kind == http::ErrorKind::digest_mismatch);

  // Names that are not tags, media types that are not media types, bytes that are not the digest.
  auto m = source.get_manifest("app", "v1");
  REQUIRE(m);
  CHECK(layout.put_manifest("x", "../v1", *m).error().kind == http::ErrorKind::invalid);
  auto forged = *m;
  forged.media_type = "application/json\r\nX-Evil: 1";
  CHECK(layout.put_manifest("x", "v1", forged).error().kind == http::ErrorKind::invalid);
  forged = *m;
  forged.bytes += " ";
  CHECK(layout.put_manifest("x", "v1", forged).error().kind == http::ErrorKind::digest_mismatch);
  registry::Descriptor path;
  path.digest = "sha256:../../etc/passwd";
  path.size = 1;
  CHECK(layout.read_blob("x", path, [](std::string_view) { return http::Status{}; }).error().kind ==
        http::ErrorKind::invalid);
}

TEST_CASE("registry::Layout as a source: a tampered layout is an error of that image, never followed") {
  test::TempDir d;
  test::Backend backend("src.example");
  backend.add_image("app", "v1", {"layer one"});
  const fs::path dir = d.path() / "export";
  registry::Layout layout(dir.string());
  copy_image(backend, layout, "v1");
  const std::string manifest_digest = layout.head_manifest("x", "v1").value()->digest;
  const fs::path manifest_file = dir / "blobs/sha256" / manifest_digest.substr(7);

  SUBCASE("a manifest file whose bytes changed") {
    spit(manifest_file, slurp(manifest_file) + "\n");
    CHECK(registry::Layout(dir.string()).get_manifest("x", "v1").error().kind == http::ErrorKind::digest_mismatch);
  }
  SUBCASE("a blob that is a symlink to a file outside the layout") {
    const std::string layer = registry::sha256_digest("layer one");
    const fs::path file = dir / "blobs/sha256" / layer.substr(7);
    spit(d.path() / "secret", "layer one");
    fs::remove(file);
    fs::create_symlink(d.path() / "secret", file);
    registry::Layout tampered(dir.string());
    CHECK_FALSE(tampered.blob_exists("x", layer).value());
    CHECK_FALSE(tampered.blob_file(layer));
    registry::Descriptor ld;
    ld.digest = layer;
    ld.size = 9;
    auto read = tampered.read_blob("x", ld, [](std::string_view) { return http::Status{}; });
    REQUIRE_FALSE(read);
    CHECK(read.error().kind == http::ErrorKind::invalid);
  }
  SUBCASE("index.json that is not JSON, or has no manifests list") {
    spit(dir / "index.json", "{\"manifests\": [");
    CHECK(registry::Layout(dir.string()).list_tags("x").error().kind == http::ErrorKind::invalid);
    spit(dir / "index.json", R"({"manifests": {}})");
    CHECK(registry::Layout(dir.string()).list_tags("x").error().kind == http::ErrorKind::invalid);
  }
  SUBCASE("an index.json entry with a header-breaking media type or a digest that is a path") {
    auto index = nlohmann::json::parse(slurp(dir / "index.json"));
    index["manifests"][0]["mediaType"] = "application/json\r\nX-Evil: 1";
    spit(dir / "index.json", index.dump());
    CHECK(registry::Layout(dir.string()).get_manifest("x", "v1").error().kind == http::ErrorKind::invalid);
    index["manifests"][0]["mediaType"] = registry::media::oci_manifest;
    index["manifests"][0]["digest"] = "sha256:../../../etc/passwd";
    spit(dir / "index.json", index.dump());
    CHECK(registry::Layout(dir.string()).get_manifest("x", "v1").error().kind == http::ErrorKind::invalid);
  }
}
