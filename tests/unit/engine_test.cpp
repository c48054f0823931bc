// migrate::Engine over stores in memory (tests/unit/fake_store.hpp): what it decides and in what
// order, without a network. The integration tests show the same against real registries.
#include "migrate/blob_locations.hpp"
#include "migrate/engine.hpp"
#include "temp_dir.hpp"
#include "tests/unit/fake_store.hpp"
#include "util/cancel.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

namespace {

using registry::Reference;

/// A run over fake registries "src.io" and "dst.io" (and any other host named).
class Fixture {
public:
  std::map<std::string, std::shared_ptr<test::Backend>> backends;
  test::Backend& src = backend("src.io");
  test::Backend& dst = backend("dst.io");
  migrate::EngineOptions options;
  util::CancelToken cancel;
  std::mutex results_mutex;
  std::vector<std::pair<migrate::ImageResult, bool>> reported; ///< (result, referrer) as the sink saw them
  migrate::BlobLocations* blob_locations = nullptr;             ///< earlier runs' memory of blobs, if any
  bool stream = false;                         ///< give the engine a final sink (as cmd does)
  std::vector<migrate::ImageResult> finals;    ///< what that sink got

  Fixture() {
    options.workers = 4;
    options.backoff = std::chrono::milliseconds(1);
  }

  test::Backend& backend(const std::string& host) {
    auto& b = backends[host];
    if (!b)
      b = std::make_shared<test::Backend>(host);
    return *b;
  }

  static migrate::ImageTask task(const std::string& src, const std::string& dst) {
    return {*Reference::parse_explicit(src), *Reference::parse_explicit(dst), src};
  }

  migrate::Summary run(const std::vector<migrate::ImageTask>& tasks) {
    http::Client client;
    migrate::EngineContext context;
    context.cancel = &cancel;
    context.blob_locations = blob_locations;
    context.make_store = [this](const Reference& ref) -> std::unique_ptr<registry::ImageStore> {
      auto& b = backends[ref.registry];
      if (!b)
        b = std::make_shared<test::Backend>(ref.registry);
      return std::make_unique<test::FakeStore>(b);
    };
    context.on_result = [this](const migrate::ImageResult& r, bool referrer, bool) {
      std::lock_guard lock(results_mutex);
      reported.emplace_back(r, referrer);
    };
    if (stream)
      context.on_final = [this](const migrate::ImageResult& r) { finals.push_back(r); }; // one call at a time
    migrate::Engine engine(client, migrate::AuthConfig(), options, std::move(context));
    migrate::TaskFeed feed;
    for (const auto& t : tasks)
      feed.push(t);
    feed.close();
    return engine.run(feed);
  }
};

/// A referrer as a registry's referrers API lists it: the descriptor's fields and its JSON.
registry::Referrer referrer(const std::string& digest, const std::string& artifact_type) {
  const nlohmann::json descriptor = {{"mediaType", registry::media::oci_manifest},
                                     {"digest", digest},
                                     {"size", 100},
                                     {"artifactType", artifact_type}};
  return {digest, std::string(registry::media::oci_manifest), artifact_type, descriptor.dump()};
}

} // namespace

TEST_CASE("migrate::Engine skips an image the destination already has") {
  Fixture f;
  const std::string config = R"({"architecture":"amd64","os":"linux"})";
  f.src.add_image("team/app", "1", {"layer-a"}, config);
  f.dst.add_image("org/app", "1", {"layer-a"}, config);
  auto s = f.run({Fixture::task("src.io/team/app:1", "dst.io/org/app:1")});
  REQUIRE(s.results.size() == 1);
  CHECK(s.results[0].ok);
  CHECK(s.results[0].skipped);
  CHECK(f.dst.count("put_manifest") == 0);
  CHECK(f.dst.count("copy_blob_from") == 0);
  CHECK(f.src.count("get_manifest") == 0); // two HEADs decide it
}

TEST_CASE("migrate::Engine replaces another image at the tag, or keeps it with no_overwrite") {
  SUBCASE("replace") {
    Fixture f;
    auto want = f.src.add_image("team/app", "1", {"new"});
    auto old = f.dst.add_image("org/app", "1", {"old"});
    auto s = f.run({Fixture::task("src.io/team/app:1", "dst.io/org/app:1")});
    REQUIRE(s.results[0].ok);
    CHECK(s.results[0].replaced == old);
    CHECK(f.dst.digest_of("org/app", "1") == want);
  }
  SUBCASE("keep") {
    Fixture f;
    f.options.no_overwrite = true;
    f.src.add_image("team/app", "1", {"new"});
    auto old = f.dst.add_image("org/app", "1", {"old"});
    auto s = f.run({Fixture::task("src.io/team/app:1", "dst.io/org/app:1")});
    REQUIRE(s.results[0].ok);
    CHECK(s.results[0].kept);
    CHECK(f.dst.digest_of("org/app", "1") == old);
    CHECK(f.dst.count("put_manifest") == 0);
  }
}

TEST_CASE("migrate::Engine pushes blobs, then an index's children, then the index") {
  Fixture f;
  auto a = f.src.add_image("team/app", "", {"amd64-layer"});
  auto b = f.src.add_image("team/app", "", {"arm64-layer"});
  auto index = f.src.add_index("team/app", "multi", {a, b});
  auto s = f.run({Fixture::task("src.io/team/app:multi", "dst.io/org/app:multi")});
  REQUIRE(s.results[0].ok);
  CHECK(f.dst.digest_of("org/app", "multi") == index);
  const long child_a = f.dst.first("put_manifest org/app " + a);
  const long child_b = f.dst.first("put_manifest org/app " + b);
  const long top = f.dst.first("put_manifest org/app multi");
  REQUIRE(child_a >= 0);
  REQUIRE(child_b >= 0);
  CHECK(child_a < top);
  CHECK(child_b < top);
  CHECK(f.dst.count("copy_blob_from") == 4); // two configs, two layers: all before the first manifest
  CHECK(f.dst.first("put_manifest") > f.dst.first("copy_blob_from"));
}

TEST_CASE("migrate::Engine moves a blob shared by two images once") {
  Fixture f;
  f.src.add_image("team/a", "1", {"shared-base", "a-layer"});
  f.src.add_image("team/b", "1", {"shared-base", "b-layer"});
  auto s = f.run({Fixture::task("src.io/team/a:1", "dst.io/org/a:1"), Fixture::task("src.io/team/b:1", "dst.io/org/b:1")});
  REQUIRE(s.results.size() == 2);
  CHECK(s.results[0].ok);
  CHECK(s.results[1].ok);
  const std::string base = registry::sha256_digest("shared-base");
  CHECK(f.dst.count("copy_blob_from org/a " + base) + f.dst.count("copy_blob_from org/b " + base) == 1);
  // The other image gets it by a mount from the repository the first one copied it into.
  CHECK(f.dst.count("mount_blob org/b " + base + " org/a") + f.dst.count("mount_blob org/a " + base + " org/b") == 1);
  CHECK(s.results[0].blobs_mounted + s.results[1].blobs_mounted == 1);
}

TEST_CASE("migrate::Engine knows every repository of the run a blob is in") {
  // One base in four images of three repositories: copied once, mounted into the two others, and
  // never asked for again where the run already put it (whichever repository it saw last). One
  // worker: the images go in this order.
  Fixture f;
  f.options.workers = 1;
  f.src.add_image("team/a", "1", {"shared-base", "a1"});
  f.src.add_image("team/b", "1", {"shared-base", "b1"});
  f.src.add_image("team/c", "1", {"shared-base", "c1"});
  f.src.add_image("team/a", "2", {"shared-base", "a2"});
  f.src.add_image("team/b", "2", {"shared-base", "b2"});
  auto s = f.run({Fixture::task("src.io/team/a:1", "dst.io/org/a:1"), Fixture::task("src.io/team/b:1", "dst.io/org/b:1"),
                  Fixture::task("src.io/team/c:1", "dst.io/org/c:1"), Fixture::task("src.io/team/a:2", "dst.io/org/a:2"),
                  Fixture::task("src.io/team/b:2", "dst.io/org/b:2")});
  REQUIRE(s.results.size() == 5);
  for (const auto& r : s.results)
    CHECK(r.ok);
  const std::string base = registry::sha256_digest("shared-base");
  CHECK(f.dst.count("copy_blob_from org/a " + base) + f.dst.count("copy_blob_from org/b " + base) +
            f.dst.count("copy_blob_from org/c " + base) ==
        1);
  CHECK(f.dst.count("mount_blob org/a " + base) + f.dst.count("mount_blob org/b " + base) +
            f.dst.count("mount_blob org/c " + base) ==
        2);
  for (const char* repo : {"org/a", "org/b", "org/c"})
    CHECK_MESSAGE(f.dst.count(std::string("blob_exists ") + repo + " " + base) == 1, repo);
}

TEST_CASE("migrate::Engine looks for all of an image's blobs at once, before any transfer takes a place") {
  // One worker: one transfer at a time. The HEADs of the four blobs are short requests: they must not
  // queue for that place (far from a registry each costs a round trip), so all four are asked together
  // and the copies start only after the answers.
  Fixture f;
  f.options.workers = 1;
  f.src.add_image("team/app", "1", {"l1", "l2", "l3"}); // + its config
  std::mutex m;
  std::condition_variable cv;
  int asking = 0, most = 0;
  f.dst.on_call = [&](const std::string& call) {
    if (call.rfind("blob_exists ", 0) != 0)
      return;
    std::unique_lock lock(m);
    most = std::max(most, ++asking);
    cv.notify_all();
    cv.wait_for(lock, std::chrono::seconds(2), [&] { return most >= 4; }); // not a timing: a bound on a wait
    --asking;
  };
  auto s = f.run({Fixture::task("src.io/team/app:1", "dst.io/org/app:1")});
  REQUIRE(s.results.size() == 1);
  CHECK(s.results[0].ok);
  CHECK(s.results[0].blobs_copied == 4);
  CHECK(most == 4);
  CHECK(f.dst.count("blob_exists org/app") == 4); // check() found them absent: ensure() does not ask again
  const long first_copy = f.dst.first("copy_blob_from");
  REQUIRE(first_copy >= 0);
  std::lock_guard lock(f.dst.mutex);
  for (long i = first_copy; i < static_cast<long>(f.dst.calls.size()); ++i)
    CHECK_MESSAGE(f.dst.calls[static_cast<std::size_t>(i)].rfind("blob_exists", 0) != 0, f.dst.calls[static_cast<std::size_t>(i)]);
}

TEST_CASE("migrate::Engine keeps a bounded window of an image's blob checks ahead") {
  // A manifest may list any number of blobs: an image queues at most 16 checks beyond the one it is
  // waiting for. While the HEAD of its second blob (the first layer) is held, the HEADs of the config
  // and of the next 16 blobs are all that can have been asked.
  Fixture f;
  f.options.workers = 1;
  std::vector<std::string> layers;
  for (int i = 0; i < 40; ++i)
    layers.push_back("layer " + std::to_string(i));
  f.src.add_image("team/app", "1", layers);
  const std::string held = "blob_exists org/app " + registry::sha256_digest("layer 0");
  std::mutex m;
  std::condition_variable cv;
  int asked = 0, asked_while_held = -1;
  f.dst.on_call = [&](const std::string& call) {
    if (call.rfind("blob_exists ", 0) != 0)
      return;
    std::unique_lock lock(m);
    ++asked;
    cv.notify_all();
    if (call == held) {
      // Released early only when more than the window were asked (the bound is broken).
      cv.wait_for(lock, std::chrono::seconds(1), [&] { return asked > 17; });
      asked_while_held = asked;
    }
  };
  auto s = f.run({Fixture::task("src.io/team/app:1", "dst.io/org/app:1")});
  REQUIRE(s.results.size() == 1);
  CHECK(s.results[0].ok);
  CHECK(s.results[0].blobs_copied == 41);
  CHECK(asked_while_held == 17); // the config, the held layer 0, layers 1 to 15... and layer 16
  CHECK(asked == 41);
}

TEST_CASE("migrate::Engine copies a digest listed as a foreign layer and again as an ordinary one") {
  Fixture f;
  const std::string config = R"({"architecture":"amd64","os":"linux"})";
  const std::string layer = "bytes the destination wants";
  nlohmann::json m = {{"schemaVersion", 2}, {"mediaType", registry::media::oci_manifest}};
  m["config"] = {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                 {"digest", f.src.add_blob("team/app", config)},
                 {"size", config.size()}};
  const std::string digest = f.src.add_blob("team/app", layer);
  m["layers"] = {{{"mediaType", "application/vnd.oci.image.layer.nondistributable.v1.tar"}, {"digest", digest}, {"size", layer.size()}},
                 {{"mediaType", "application/vnd.oci.image.layer.v1.tar"}, {"digest", digest}, {"size", layer.size()}}};
  f.src.add_manifest("team/app", "1", m.dump(), std::string(registry::media::oci_manifest));
  auto s = f.run({Fixture::task("src.io/team/app:1", "dst.io/org/app:1")});
  REQUIRE(s.results.size() == 1);
  CHECK_MESSAGE(s.results[0].ok, s.results[0].error);
  CHECK(f.dst.count("copy_blob_from org/app " + digest) == 1);
  CHECK(s.results[0].blobs_copied == 2);
  CHECK(s.results[0].blobs_foreign == 0);
}

TEST_CASE("migrate::Engine mounts instead of copying inside one registry") {
  Fixture f;
  f.src.add_image("team/app", "1", {"layer"});
  auto s = f.run({Fixture::task("src.io/team/app:1", "src.io/copy/app:1")});
  REQUIRE(s.results[0].ok);
  CHECK(f.src.count("copy_blob_from") == 0);
  CHECK(f.src.count("mount_blob copy/app") == 2); // config and layer
  CHECK(s.results[0].blobs_mounted == 2);
}

TEST_CASE("migrate::Engine mounts a blob from where an earlier run saw it, and copies when that hint is stale") {
  test::TempDir t;
  const std::string base = registry::sha256_digest("shared-base");
  const std::string config = R"({"architecture":"amd64","os":"linux"})";
  SUBCASE("an earlier run copied the base into org/a: org/b mounts it") {
    Fixture f;
    f.src.add_image("team/a", "1", {"shared-base", "a-layer"}, config);
    {
      migrate::BlobLocations memory(t.path() / "blobs");
      f.blob_locations = &memory;
      auto first = f.run({Fixture::task("src.io/team/a:1", "dst.io/org/a:1")});
      REQUIRE(first.results[0].ok);
      CHECK(first.results[0].blobs_copied == 3); // config, base, layer
      REQUIRE_FALSE(memory.save());
    }
    f.src.add_image("team/b", "1", {"shared-base", "b-layer"}, config);
    migrate::BlobLocations memory(t.path() / "blobs"); // a new run reads what the first kept
    CHECK(memory.find("dst.io", base) == "org/a");
    f.blob_locations = &memory;
    auto s = f.run({Fixture::task("src.io/team/b:1", "dst.io/org/b:1")});
    REQUIRE(s.results[0].ok);
    CHECK(f.dst.count("mount_blob org/b " + base + " org/a") == 1);
    CHECK(f.dst.count("copy_blob_from org/b " + base) == 0);
    CHECK(f.dst.count("mount_blob org/b " + registry::sha256_digest(config) + " org/a") == 1); // same config
    CHECK(s.results[0].blobs_mounted == 2);
    CHECK(s.results[0].blobs_copied == 1); // b-layer: nowhere before
    CHECK(memory.find("dst.io", registry::sha256_digest("b-layer")) == "org/b");
  }
  SUBCASE("the remembered repository no longer has it: the bytes are copied") {
    Fixture f;
    f.src.add_image("team/b", "1", {"shared-base"}, config);
    migrate::BlobLocations memory(t.path() / "blobs");
    memory.remember("dst.io", base, "org/deleted");
    f.blob_locations = &memory;
    auto s = f.run({Fixture::task("src.io/team/b:1", "dst.io/org/b:1")});
    REQUIRE(s.results[0].ok);
    CHECK(f.dst.count("mount_blob org/b " + base + " org/deleted") == 1); // tried
    CHECK(f.dst.count("copy_blob_from org/b " + base) == 1);              // then copied
    CHECK(s.results[0].blobs_mounted == 0);
    CHECK(s.results[0].blobs_copied == 2);
    CHECK(memory.find("dst.io", base) == "org/b"); // the hint now names where it is
  }
  SUBCASE("the mount itself fails: the bytes are copied") {
    Fixture f;
    f.src.add_image("team/b", "1", {"shared-base"}, config);
    f.dst.add_image("org/a", "1", {"shared-base"}, config);
    f.dst.fail_forever["mount_blob org/b " + base + " org/a"] = static_cast<int>(http::ErrorKind::unauthorized);
    migrate::BlobLocations memory(t.path() / "blobs");
    memory.remember("dst.io", base, "org/a");
    f.blob_locations = &memory;
    auto s = f.run({Fixture::task("src.io/team/b:1", "dst.io/org/b:1")});
    REQUIRE(s.results[0].ok);
    CHECK(f.dst.count("mount_blob org/b " + base + " org/a") >= 1);
    CHECK(f.dst.count("copy_blob_from org/b " + base) == 1);
  }
  SUBCASE("a hint for another registry is not used") {
    Fixture f;
    f.src.add_image("team/b", "1", {"shared-base"}, config);
    f.dst.add_image("org/a", "1", {"shared-base"}, config);
    migrate::BlobLocations memory(t.path() / "blobs");
    memory.remember("other.io", base, "org/a");
    f.blob_locations = &memory;
    auto s = f.run({Fixture::task("src.io/team/b:1", "dst.io/org/b:1")});
    REQUIRE(s.results[0].ok);
    CHECK(f.dst.count("mount_blob") == 0);
    CHECK(f.dst.count("copy_blob_from org/b " + base) == 1);
  }
}

TEST_CASE("migrate::Engine retries transient failures, in the task then in another pass; not permanent ones") {
  Fixture f;
  f.options.attempts = 2;
  f.options.retries = 2;
  f.src.add_image("team/app", "1", {"layer"});
  const std::string layer = registry::sha256_digest("layer");
  f.dst.fail["copy_blob_from org/app " + layer] = 3; // two tries in pass 1, one in pass 2, then it works
  auto s = f.run({Fixture::task("src.io/team/app:1", "dst.io/org/app:1"),
                  Fixture::task("src.io/team/missing:1", "dst.io/org/missing:1")});
  REQUIRE(s.results.size() == 2);
  CHECK(s.results[0].ok);
  CHECK(s.results[0].pass == 1);
  CHECK(f.dst.count("copy_blob_from org/app " + layer) == 4);
  CHECK(!s.results[1].ok);
  CHECK(s.results[1].permanent);
  CHECK(s.results[1].error_kind == http::ErrorKind::not_found);
  CHECK(s.results[1].pass == 0); // not found: no second pass
  CHECK(s.failed == 1);
  // The sink saw the failed pass 1 result of the first task, and each task's last one.
  std::size_t seen_first = 0;
  for (const auto& [r, referrer] : f.reported)
    seen_first += r.task.source.repository == "team/app";
  CHECK(seen_first == 2);
}

TEST_CASE("migrate::Engine with a final sink: each task's last result once, only the failed ones kept") {
  Fixture f;
  f.stream = true;
  f.options.attempts = 1;
  f.options.retries = 1;
  f.src.add_image("team/app", "1", {"layer"});
  f.src.add_image("team/app", "2", {"layer", "two"});
  const std::string layer = registry::sha256_digest("layer");
  f.dst.fail["copy_blob_from org/app " + layer] = 1; // the first copy of it fails once: a second pass
  auto s = f.run({Fixture::task("src.io/team/app:1", "dst.io/org/app:1"),
                  Fixture::task("src.io/team/missing:1", "dst.io/org/missing:1"),
                  Fixture::task("src.io/team/app:2", "dst.io/org/app:2")});
  CHECK(s.images == 3);
  CHECK(s.failed == 1);
  REQUIRE(s.results.size() == 1); // the two that ended well went to the sink and were let go
  CHECK(s.results[0].task.source.repository == "team/missing");
  REQUIRE(f.finals.size() == 3); // every task once, though one of them ran twice
  std::map<std::string, int> by_source;
  std::uint64_t bytes = 0;
  for (const auto& r : f.finals) {
    ++by_source[r.task.source.to_string()];
    bytes += r.bytes;
  }
  CHECK(by_source == std::map<std::string, int>{{"src.io/team/app:1", 1}, {"src.io/team/app:2", 1}, {"src.io/team/missing:1", 1}});
  CHECK(s.bytes == bytes);
  CHECK(s.bytes > 0);
  int passes = 0;
  for (const auto& r : f.finals)
    passes += r.pass;
  CHECK(passes == 1); // the image whose blob failed ended in the second pass
}

TEST_CASE("migrate::TaskFeed with a limit: a push waits for room") {
  migrate::TaskFeed feed(2);
  feed.push(Fixture::task("src.io/a:1", "dst.io/a:1"));
  feed.push(Fixture::task("src.io/a:2", "dst.io/a:2"));
  std::atomic<bool> pushed{false};
  std::thread producer([&] {
    feed.push(Fixture::task("src.io/a:3", "dst.io/a:3"));
    pushed = true;
    feed.close();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(!pushed); // two wait already
  auto first = feed.pop();
  REQUIRE(first);
  CHECK(first->source.tag == "1");
  producer.join(); // room for the third: the push returned
  CHECK(pushed);
  CHECK(feed.pop()->source.tag == "2");
  CHECK(feed.pop()->source.tag == "3");
  CHECK(!feed.pop());
}

TEST_CASE("migrate::TaskFeed with a limit: closing it lets a waiting push go, and drops its task") {
  migrate::TaskFeed feed(1);
  feed.push(Fixture::task("src.io/a:1", "dst.io/a:1"));
  std::thread producer([&] { feed.push(Fixture::task("src.io/a:2", "dst.io/a:2")); }); // waits: no room
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  feed.close(); // the run is over (as when it threw): the producer must not wait forever
  producer.join();
  CHECK(feed.pop()->source.tag == "1");
  CHECK(!feed.pop()); // the task pushed after the close was dropped
}

TEST_CASE("migrate::Engine stops taking work when the run is stopped") {
  Fixture f;
  f.options.workers = 1;
  std::vector<migrate::ImageTask> tasks;
  for (int i = 0; i < 12; ++i) {
    f.src.add_image("team/app", "t" + std::to_string(i), {"layer-" + std::to_string(i)});
    tasks.push_back(Fixture::task("src.io/team/app:t" + std::to_string(i), "dst.io/org/app:t" + std::to_string(i)));
  }
  std::atomic<int> copies{0};
  f.dst.on_call = [&](const std::string& call) {
    if (call.rfind("copy_blob_from", 0) == 0 && ++copies == 2)
      f.cancel.stop(); // Ctrl-C while the first image copies
  };
  auto s = f.run(tasks);
  REQUIRE(s.results.size() == 12);
  std::size_t cancelled = 0, copied = 0;
  for (const auto& r : s.results) {
    cancelled += !r.ok && r.error_kind == http::ErrorKind::cancelled;
    copied += r.ok;
  }
  CHECK(copied >= 1);   // what was in flight finished
  CHECK(cancelled >= 8); // the rest never started
  CHECK(f.dst.count("put_manifest") == copied);
}

TEST_CASE("migrate::Engine copies referrers after their image") {
  SUBCASE("through the referrers API") {
    Fixture f;
    f.src.referrers_api = true;
    auto image = f.src.add_image("team/app", "1", {"layer"});
    auto signature = f.src.add_image("team/app", "", {"signature-blob"});
    f.src.referrers[image] = {referrer(signature, "application/sig")};
    auto s = f.run({Fixture::task("src.io/team/app:1", "dst.io/org/app:1")});
    INFO(s.results[0].error);
    REQUIRE(s.results[0].ok);
    CHECK(s.results[0].referrers == 1);
    const long top = f.dst.first("put_manifest org/app 1");
    const long sig = f.dst.first("put_manifest org/app " + signature);
    REQUIRE(sig >= 0);
    CHECK(top < sig);
    bool reported_as_referrer = false;
    for (const auto& [r, referrer] : f.reported)
      reported_as_referrer |= referrer && r.digest == signature;
    CHECK(reported_as_referrer);
  }
  SUBCASE("through cosign's tags, without the API") {
    Fixture f;
    auto image = f.src.add_image("team/app", "1", {"layer"});
    const std::string sig_tag = "sha256-" + image.substr(7) + ".sig";
    f.src.add_image("team/app", sig_tag, {"cosign-signature"});
    auto s = f.run({Fixture::task("src.io/team/app:1", "dst.io/org/app:1")});
    REQUIRE(s.results[0].ok);
    CHECK(s.results[0].referrers == 1);
    CHECK(f.dst.first("put_manifest org/app 1") < f.dst.first("put_manifest org/app " + sig_tag));
  }
  SUBCASE("a failed referrer fails the image") {
    Fixture f;
    f.options.retries = 0;
    f.src.referrers_api = true;
    auto image = f.src.add_image("team/app", "1", {"layer"});
    f.src.referrers[image] = {referrer("sha256:" + std::string(64, 'e'), "application/sig")};
    auto s = f.run({Fixture::task("src.io/team/app:1", "dst.io/org/app:1")});
    CHECK(!s.results[0].ok);
    CHECK(s.results[0].error.find("referrer sha256:eeee") != std::string::npos);
  }
}

TEST_CASE("migrate::Engine plans a dry run without writing") {
  Fixture f;
  f.options.dry_run = true;
  f.src.add_image("team/a", "1", {"shared", "a"});
  f.src.add_image("team/b", "1", {"shared", "b"});
  f.dst.add_blob("org/a", "a"); // already there
  auto s = f.run({Fixture::task("src.io/team/a:1", "dst.io/org/a:1"), Fixture::task("src.io/team/b:1", "dst.io/org/b:1")});
  REQUIRE(s.results.size() == 2);
  CHECK(s.results[0].planned);
  CHECK(s.results[0].blobs_existed == 1);
  CHECK(s.results[0].blobs_copied + s.results[1].blobs_copied == 4); // two configs, "shared" once, "b"
  CHECK(s.results[0].blobs_mounted + s.results[1].blobs_mounted == 1); // "shared" again
  CHECK(f.dst.count("put_manifest") == 0);
  CHECK(f.dst.count("copy_blob_from") == 0);
  CHECK(f.dst.count("mount_blob") == 0);
}
