// migrate::ReportWriter: the report written as a run goes reads as the whole document would.
#include "migrate/config.hpp"
#include "migrate/report.hpp"
#include "temp_dir.hpp"

#include <doctest/doctest.h>

#include <filesystem>

#include <fcntl.h>
#include <unistd.h>

namespace {

migrate::ImageResult result(const std::string& tag, bool ok) {
  migrate::ImageResult r;
  r.task = {*registry::Reference::parse_explicit("src.io/team/app:" + tag),
            *registry::Reference::parse_explicit("dst.io/org/app:" + tag), "src.io/team/app"};
  r.ok = ok;
  r.digest = "sha256:" + std::string(64, 'a');
  r.bytes = 1234;
  r.blobs_copied = 2;
  if (!ok) {
    r.error = "a line\nand a registry's bytes \xff";
    r.error_kind = http::ErrorKind::network;
  }
  return r;
}

} // namespace

TEST_CASE("migrate::ReportWriter: images as they end, then the totals, as one document") {
  test::TempDir dir;
  const std::string path = dir.str() + "/report.json";
  migrate::Summary s;
  s.images = 3;
  s.failed = 1;
  s.bytes = 3702;
  s.seconds = 1.5;
  std::vector<migrate::ImageResult> ended = {result("2", true), result("1", false), result("3", true)};
  {
    migrate::ReportWriter w(path);
    for (const auto& r : ended)
      w.add(r);
    CHECK(!std::filesystem::exists(path)); // in place only when finished
    // Where the filesystem has unnamed files, nothing is named in the directory meanwhile: a SIGKILL
    // leaves nothing behind.
    const int probe = ::open(dir.str().c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (probe >= 0) {
      ::close(probe);
      CHECK(std::filesystem::is_empty(dir.path()));
    }
    w.finish(s, {{"src.io/team/gone", "listing tags: 404", std::nullopt}, {"src.io/team/flaky", "listing tags: 503", nlohmann::json("dst.io/x")}});
  }
  nlohmann::json images = nlohmann::json::array();
  for (const auto& r : ended)
    images.push_back(migrate::image_json(r));
  const nlohmann::json whole = {
      {"images", images},
      {"ruleErrors", {{{"rule", "src.io/team/gone"}, {"error", "listing tags: 404"}, {"rerun", false}},
                      {{"rule", "src.io/team/flaky"}, {"error", "listing tags: 503"}, {"rerun", true}}}},
      {"totals", {{"images", 3}, {"failed", 1}, {"generateFailed", 0}, {"bytes", 3702}, {"resumedDownloads", 0}, {"seconds", 1.5}}}};
  // Byte for byte what dumping the whole document at once writes (the format before streaming).
  CHECK(dir.read("report.json") == whole.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  auto back = nlohmann::json::parse(dir.read("report.json"));
  CHECK(back["images"][1]["status"] == "failed");
  CHECK(back["images"][1]["errorKind"] == "network");
  CHECK(back["images"][0]["source"] == "src.io/team/app:2");
}

TEST_CASE("migrate::ReportWriter: no image, many images, a report never finished") {
  test::TempDir dir;
  {
    migrate::ReportWriter w(dir.str() + "/empty.json");
    w.finish(migrate::Summary{});
  }
  nlohmann::json empty = {{"images", nlohmann::json::array()},
                          {"ruleErrors", nlohmann::json::array()},
                          {"totals", {{"images", 0}, {"failed", 0}, {"generateFailed", 0}, {"bytes", 0},
                                      {"resumedDownloads", 0}, {"seconds", 0.0}}}};
  CHECK(dir.read("empty.json") == empty.dump(2) + "\n");
  {
    migrate::ReportWriter w(dir.str() + "/many.json"); // more than one flush of the buffer
    for (int i = 0; i < 2000; ++i)
      w.add(result(std::to_string(i), true));
    w.finish(migrate::Summary{});
  }
  auto many = nlohmann::json::parse(dir.read("many.json"));
  REQUIRE(many["images"].size() == 2000);
  CHECK(many["images"][1999]["destination"] == "dst.io/org/app:1999");
  {
    migrate::ReportWriter w(dir.str() + "/interrupted.json");
    w.add(result("1", true));
  } // an exception went through the run: no report, and no temporary left beside it
  CHECK(!std::filesystem::exists(dir.path() / "interrupted.json"));
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path()))
    ++files;
  CHECK(files == 2);
  CHECK_THROWS_AS(migrate::ReportWriter(dir.str() + "/no/such/dir/report.json"), migrate::ConfigError);
}
