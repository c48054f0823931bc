#include "migrate/config.hpp"
#include "migrate/rules.hpp"
#include "migrate/scheduler.hpp"

#include <doctest/doctest.h>

#include <algorithm>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <set>

using migrate::Defaults;
using migrate::Rule;

namespace {

/// A fake registry listing: repository name -> tags.
migrate::TagLister fake_tags(std::map<std::string, std::vector<std::string>> repos) {
  return [repos](const registry::Reference& ref) -> http::Result<std::vector<std::string>> {
    auto it = repos.find(ref.name());
    if (it == repos.end())
      return http::make_error(http::ErrorKind::not_found, "listing tags of " + ref.name() + ": NAME_UNKNOWN");
    return it->second;
  };
}

std::vector<std::string> pairs(const migrate::Expansion& e) {
  std::vector<std::string> out;
  for (const auto& t : e.tasks)
    out.push_back(t.source.to_string() + " -> " + t.destination.to_string());
  return out;
}

} // namespace

TEST_CASE("migrate::expand_rules: the eight rules") {
  Defaults d;
  d.registry = "swr.example.com";
  d.ns = "test";
  auto tags = fake_tags({{"src.io/ns/app", {"1.0", "2.0"}}, {"src.io/ns/empty", {}}});
  const std::string dg = "sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582";

  struct Row {
    std::string name;
    std::vector<Rule> rules;
    std::vector<std::string> expected;
    std::string error; // substring of the single expected error, "" = none
  };
  const std::vector<Row> rows = {
      {"rule 1: a whole namespace is refused", {{"src.io/ns/*", "dst.io/x/y"}}, {}, "rule 1"},
      {"rule 1: a bare registry is refused", {{"src.io/", "dst.io/x/y"}}, {}, "rule 1"},
      {"rule 2: registry/namespace/repository:tag", {{"src.io/ns/app:1.0", "dst.io/team/app:1.0"}},
       {"src.io/ns/app:1.0 -> dst.io/team/app:1.0"}, ""},
      {"rule 3: source without namespace", {{"src.io/app:1.0", "dst.io/team/app"}}, {}, "rule 3"},
      {"rule 3: destination without namespace", {{"src.io/ns/app:1.0", "dst.io/app"}}, {}, "rule 3"},
      {"rule 3: source without registry", {{"ns/app:1.0", "dst.io/team/app"}}, {}, "rule 3"},
      {"rule 4: empty source", {{"", "dst.io/team/app"}}, {}, "rule 4"},
      {"rule 4: one source, several destinations",
       {{"src.io/ns/app:1.0", "dst.io/a/app"}, {"src.io/ns/app:1.0", "dst2.io/b/app"}},
       {"src.io/ns/app:1.0 -> dst.io/a/app:1.0", "src.io/ns/app:1.0 -> dst2.io/b/app:1.0"}, ""},
      {"rule 5: the name may change", {{"src.io/ns/app:1.0", "dst.io/other/name:stable"}},
       {"src.io/ns/app:1.0 -> dst.io/other/name:stable"}, ""},
      {"rule 6: no tag = every tag", {{"src.io/ns/app", "dst.io/team/app"}},
       {"src.io/ns/app:1.0 -> dst.io/team/app:1.0", "src.io/ns/app:2.0 -> dst.io/team/app:2.0"}, ""},
      {"rule 6: destination must then have no tag", {{"src.io/ns/app", "dst.io/team/app:x"}}, {}, "rule 6"},
      {"rule 6: a repository with no tags", {{"src.io/ns/empty", "dst.io/team/app"}}, {}, "no tags"},
      {"rule 6: listing fails", {{"src.io/ns/gone", "dst.io/team/app"}}, {}, "NAME_UNKNOWN"},
      {"rule 7: destination without tag takes the source tag", {{"src.io/ns/app:2.0", "dst.io/team/app"}},
       {"src.io/ns/app:2.0 -> dst.io/team/app:2.0"}, ""},
      {"rule 8: empty destination = defaults, same repository and tag", {{"src.io/ns/app:2.0", ""}},
       {"src.io/ns/app:2.0 -> swr.example.com/test/app:2.0"}, ""},
      {"rule 8 with rule 6", {{"src.io/ns/app", ""}},
       {"src.io/ns/app:1.0 -> swr.example.com/test/app:1.0", "src.io/ns/app:2.0 -> swr.example.com/test/app:2.0"}, ""},
      {"digest source keeps the digest, pushed by digest", {{"src.io/ns/app@" + dg, "dst.io/team/app"}},
       {"src.io/ns/app@" + dg + " -> dst.io/team/app@" + dg}, ""},
      {"tag+digest source pushes under the tag", {{"src.io/ns/app:1.0@" + dg, "dst.io/team/app"}},
       {"src.io/ns/app:1.0@" + dg + " -> dst.io/team/app:1.0"}, ""},
      {"destination with digest is refused", {{"src.io/ns/app:1.0", "dst.io/team/app@" + dg}}, {}, "digest"},
      {"invalid reference", {{"src.io/ns/App:1.0", "dst.io/team/app"}}, {}, "lowercase"},
      {"duplicates collapse", {{"src.io/ns/app:1.0", "dst.io/a/app"}, {"src.io/ns/app:1.0", "dst.io/a/app:1.0"}},
       {"src.io/ns/app:1.0 -> dst.io/a/app:1.0"}, ""},
  };
  for (const auto& row : rows) {
    CAPTURE(row.name);
    auto e = migrate::expand_rules(row.rules, d, tags);
    CHECK(pairs(e) == row.expected);
    if (row.error.empty()) {
      CHECK(e.errors.empty());
    } else {
      REQUIRE(e.errors.size() == 1);
      CHECK(e.errors[0].message.find(row.error) != std::string::npos);
      CHECK(e.errors[0].rule == row.rules[0].source);
    }
  }
}

TEST_CASE("migrate::expand_rules: defaults") {
  auto tags = fake_tags({});
  SUBCASE("rule 8 without defaults is an error") {
    auto e = migrate::expand_rules({{"src.io/ns/app:1", ""}}, Defaults{}, tags);
    REQUIRE(e.errors.size() == 1);
    CHECK(e.errors[0].message.find("rule 8") != std::string::npos);
  }
  SUBCASE("default source registry and namespace fill in") {
    Defaults d;
    d.source_registry = "src.io";
    d.source_namespace = "lib";
    auto e = migrate::expand_rules({{"app:1", "dst.io/a/app"}, {"team/app:2", "dst.io/a/app"}}, d, tags);
    CHECK(e.errors.empty());
    CHECK(pairs(e) == std::vector<std::string>{"src.io/lib/app:1 -> dst.io/a/app:1", "src.io/team/app:2 -> dst.io/a/app:2"});
  }
  SUBCASE("rule 8 keeps the path below the namespace") {
    Defaults d;
    d.registry = "swr.example.com";
    d.ns = "org";
    auto e = migrate::expand_rules({{"src.io/ns/sub/app:1", ""}}, d, tags);
    CHECK(pairs(e) == std::vector<std::string>{"src.io/ns/sub/app:1 -> swr.example.com/org/sub/app:1"});
  }
}

TEST_CASE("migrate::expand_rules: two images for one destination tag") {
  auto tags = fake_tags({{"src.io/ns/app", {"1", "2"}}, {"src.io/ns/other", {"2", "3"}}});
  SUBCASE("explicit tags: the first rule keeps the destination, the second is an error") {
    auto e = migrate::expand_rules({{"src.io/ns/app:1", "dst.io/o/conf:x"}, {"src.io/ns/app:2", "dst.io/o/conf:x"}},
                                   Defaults{}, tags);
    CHECK(pairs(e) == std::vector<std::string>{"src.io/ns/app:1 -> dst.io/o/conf:x"});
    REQUIRE(e.errors.size() == 1);
    CHECK(e.errors[0].rule == "src.io/ns/app:2");
    CHECK(e.errors[0].message == "destination dst.io/o/conf:x is already the copy of src.io/ns/app:1 (rule "
                                 "\"src.io/ns/app:1\"); src.io/ns/app:2 is not copied there");
  }
  SUBCASE("all-tags rules into one repository: only the shared tag collides") {
    auto e = migrate::expand_rules({{"src.io/ns/app", "dst.io/o/app"}, {"src.io/ns/other", "dst.io/o/app"}}, Defaults{}, tags);
    CHECK(pairs(e) == std::vector<std::string>{"src.io/ns/app:1 -> dst.io/o/app:1", "src.io/ns/app:2 -> dst.io/o/app:2",
                                               "src.io/ns/other:3 -> dst.io/o/app:3"});
    REQUIRE(e.errors.size() == 1);
    CHECK(e.errors[0].message.find("destination dst.io/o/app:2 is already the copy of src.io/ns/app:2") == 0);
  }
  SUBCASE("the same copy asked twice is done once, without an error") {
    auto e = migrate::expand_rules({{"src.io/ns/app:1", "dst.io/o/app"}, {"src.io/ns/app", "dst.io/o/app"}}, Defaults{}, tags);
    CHECK(e.errors.empty());
    CHECK(pairs(e) == std::vector<std::string>{"src.io/ns/app:1 -> dst.io/o/app:1", "src.io/ns/app:2 -> dst.io/o/app:2"});
  }
  SUBCASE("a refused copy asked twice is reported once") {
    auto e = migrate::expand_rules({{"src.io/ns/app:1", "dst.io/o/conf:x"},
                                    {"src.io/ns/app:2", "dst.io/o/conf:x"},
                                    {"src.io/ns/app:2", "dst.io/o/conf:x"}},
                                   Defaults{}, tags);
    CHECK(pairs(e) == std::vector<std::string>{"src.io/ns/app:1 -> dst.io/o/conf:x"});
    CHECK(e.errors.size() == 1);
  }
  SUBCASE("two layouts whose directories hold an '@' are two images") {
    auto e = migrate::expand_rules({{"oci:/media@usb1:v1", "dst.io/o/app:v1"}, {"oci:/media@usb2:v1", "dst.io/o/app:v1"}},
                                   Defaults{}, tags);
    CHECK(e.tasks.size() == 1);
    REQUIRE(e.errors.size() == 1);
    CHECK(e.errors[0].message.find("is already the copy of") != std::string::npos);
  }
  SUBCASE("one source to two destinations is fine") {
    auto e = migrate::expand_rules({{"src.io/ns/app:1", "dst.io/o/a"}, {"src.io/ns/app:1", "dst.io/o/b"}}, Defaults{}, tags);
    CHECK(e.errors.empty());
    CHECK(e.tasks.size() == 2);
  }
}

TEST_CASE("migrate::expand_rules: a destination may repeat the source's digest (what `config` writes)") {
  const std::string x = "sha256:" + std::string(64, 'a'), y = "sha256:" + std::string(64, 'b');
  auto e = migrate::expand_rules({{"s.io/n/app:1.25@" + x, "d.io/o/app:1.25@" + x, {}, ""},
                                  {"s.io/n/db@" + x, "d.io/o/db@" + x, {}, ""},
                                  {"s.io/n/web@" + x, "d.io/o/web@" + y, {}, ""}},
                                 Defaults{}, fake_tags({}));
  CHECK(pairs(e) == std::vector<std::string>{"s.io/n/app:1.25@" + x + " -> d.io/o/app:1.25", "s.io/n/db@" + x + " -> d.io/o/db@" + x});
  REQUIRE(e.errors.size() == 1);
  CHECK(e.errors[0].message.find("must not contain a digest other than the source's") != std::string::npos);
  // The tag pinned and not pinned (two workloads) write one tag: not a collision.
  e = migrate::expand_rules({{"s.io/n/app:1.25", "d.io/o/app:1.25", {}, ""}, {"s.io/n/app:1.25@" + x, "d.io/o/app:1.25@" + x, {}, ""}},
                            Defaults{}, fake_tags({}));
  CHECK(e.errors.empty());
  CHECK(e.tasks.size() == 2);
  // Pinned to two different digests (the tag's image drifted between workloads): a collision.
  e = migrate::expand_rules({{"s.io/n/app:1.25", "d.io/o/app:1.25", {}, ""},
                             {"s.io/n/app:1.25@" + x, "d.io/o/app:1.25@" + x, {}, ""},
                             {"s.io/n/app:1.25@" + y, "d.io/o/app:1.25@" + y, {}, ""}},
                            Defaults{}, fake_tags({}));
  CHECK(e.tasks.size() == 2);
  REQUIRE(e.errors.size() == 1);
  CHECK(e.errors[0].message.find("destination d.io/o/app:1.25 is already the copy of") == 0);
  // Two digests for one tag.
  e = migrate::expand_rules({{"s.io/n/app@" + x, "d.io/o/app:v1", {}, ""}, {"s.io/n/app@" + y, "d.io/o/app:v1", {}, ""}},
                            Defaults{}, fake_tags({}));
  CHECK(e.tasks.size() == 1);
  CHECK(e.errors.size() == 1);
}

TEST_CASE("migrate::rules_for_shard") {
  std::vector<Rule> rules = {{"s.io/a/x:1", "d.io/o/same:t", {}, ""}, {"s.io/b/y:2", "d.io/o/same:t", {}, ""}};
  for (int k = 0; k < 20; ++k)
    rules.push_back({"s.io/n/r" + std::to_string(k), "d.io/n/r" + std::to_string(k), {}, ""});
  rules.push_back({"", "d.io/n/broken", {}, ""});
  for (int count = 2; count <= 5; ++count) {
    std::map<std::string, int> shard_of; // source -> shard
    std::size_t total = 0;
    for (int i = 0; i < count; ++i)
      for (const auto& r : migrate::rules_for_shard(rules, Defaults{}, i, count)) {
        CHECK(shard_of.emplace(r.source + " -> " + r.destination, i).second); // in one shard only
        ++total;
      }
    CHECK(total == rules.size());
    // Two rules writing one tag meet in one shard, whatever their sources.
    CHECK(shard_of["s.io/a/x:1 -> d.io/o/same:t"] == shard_of["s.io/b/y:2 -> d.io/o/same:t"]);
    CHECK(shard_of[" -> d.io/n/broken"] == 0);
    std::set<int> used;
    for (const auto& [rule, shard] : shard_of)
      used.insert(shard);
    CHECK(used.size() > 1); // the 20 repositories spread
  }
}

TEST_CASE("migrate::read_rules") {
  std::vector<migrate::RuleError> errors;
  auto rules = migrate::read_rules(nlohmann::json::parse(R"({
    "a.io/n/x:1": "b.io/n/x",
    "a.io/n/y:1": "",
    "a.io/n/z:1": null,
    "a.io/n/w:1": ["b.io/n/w", "c.io/n/w"],
    "a.io/n/bad:1": 42,
    "a.io/n/none:1": []
  })"), "images.json", errors);
  CHECK(rules.size() == 5);
  REQUIRE(errors.size() == 2);
  CHECK(errors[0].rule == "a.io/n/bad:1");
  CHECK(errors[0].message.find("number") != std::string::npos);
  CHECK(errors[1].message.find("rule 4") != std::string::npos);
  CHECK_THROWS_AS(migrate::read_rules(nlohmann::json::array(), "images.json", errors), migrate::ConfigError);
}

TEST_CASE("migrate::read_rules: credentials in a rule are refused, and not repeated") {
  std::vector<migrate::RuleError> errors;
  auto rules = migrate::read_rules(nlohmann::json::parse(R"({
    "alice:pwsecret@a.io/n/x:1": "b.io/n/x",
    "a.io/n/y:1": "bob:hunter2@b.io/n/y",
    "a.io/n/z:1": ["b.io/n/z", "https://carol:s3cret@c.io/n/z"],
    "a.io/n/ok@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef": "b.io/n/ok"
  })"), "images.json", errors);
  CHECK(rules.size() == 2); // b.io/n/z and the pinned one
  REQUIRE(errors.size() == 3);
  for (const auto& e : errors) {
    CAPTURE(e.rule);
    CAPTURE(e.message);
    CHECK(e.message.find("cannot hold credentials") != std::string::npos);
    for (const char* secret : {"pwsecret", "hunter2", "s3cret", "alice", "bob", "carol"}) {
      CHECK(e.rule.find(secret) == std::string::npos);
      CHECK(e.message.find(secret) == std::string::npos);
    }
  }
  CHECK(std::any_of(errors.begin(), errors.end(), [](const auto& e) { return e.rule == "<redacted>@a.io/n/x:1"; }));
}

TEST_CASE("migrate::read_rules: image-syncer's several tags in one source") {
  std::vector<migrate::RuleError> errors;
  auto rules = migrate::read_rules(nlohmann::json::parse(R"({
    "a.io:5000/n/x:1.0,1.1,latest": "b.io:5000/n/x",
    "a.io/n/y:1,2": ["b.io/n/y", "oci:/media/usb/y"],
    "a.io/n/z:1,2": "b.io/n/z:stable",
    "a.io/n/e:1,,2": ["b.io/n/e", "c.io/n/e"],
    "oci:lay,out": "b.io/n/lay",
    "a.io/n/q:1,2": "127.0.0.1:9",
    "a.io:5000/n/plain:1": "b.io/n/plain"
  })"), "images.json", errors);
  std::vector<std::string> got;
  for (const auto& r : rules)
    got.push_back(r.source + " -> " + r.destination + " (" + r.name() + ")");
  CHECK(got == std::vector<std::string>{
                   "a.io/n/q:1 -> 127.0.0.1:9 (a.io/n/q:1,2)",
                   "a.io/n/q:2 -> 127.0.0.1:9 (a.io/n/q:1,2)",
                   "a.io/n/y:1 -> b.io/n/y (a.io/n/y:1,2)",
                   "a.io/n/y:2 -> b.io/n/y (a.io/n/y:1,2)",
                   "a.io/n/y:1 -> oci:/media/usb/y (a.io/n/y:1,2)",
                   "a.io/n/y:2 -> oci:/media/usb/y (a.io/n/y:1,2)",
                   "a.io:5000/n/plain:1 -> b.io/n/plain (a.io:5000/n/plain:1)",
                   "a.io:5000/n/x:1.0 -> b.io:5000/n/x (a.io:5000/n/x:1.0,1.1,latest)",
                   "a.io:5000/n/x:1.1 -> b.io:5000/n/x (a.io:5000/n/x:1.0,1.1,latest)",
                   "a.io:5000/n/x:latest -> b.io:5000/n/x (a.io:5000/n/x:1.0,1.1,latest)",
                   "oci:lay,out -> b.io/n/lay (oci:lay,out)",
               });
  REQUIRE(errors.size() == 2);
  CHECK(errors[0].rule == "a.io/n/e:1,,2");
  CHECK(errors[0].message == "empty tag in the list \"1,,2\"");
  CHECK(errors[1].rule == "a.io/n/z:1,2");
  CHECK(errors[1].message == "a source with several tags needs a destination without tag (each keeps its own)");
}

TEST_CASE("migrate::TagFilter") {
  std::vector<std::string> tags = {"latest", "1.0.0", "v1.2.0", "1.2.3", "1.10.0", "2.0.0-rc1", "2.0.0", "nightly-2026"};
  auto apply = [&](migrate::TagFilter f) { return f.apply(tags).value(); };
  SUBCASE("regex and exclude match whole tags") {
    migrate::TagFilter f;
    f.regex = R"(v?1\..*)";
    CHECK(apply(f) == std::vector<std::string>{"1.0.0", "v1.2.0", "1.2.3", "1.10.0"});
    f.exclude = R"(.*\.0)";
    CHECK(apply(f) == std::vector<std::string>{"1.2.3"});
  }
  SUBCASE("semver range; non-versions never match") {
    migrate::TagFilter f;
    f.semver = ">=1.2 <2";
    CHECK(apply(f) == std::vector<std::string>{"v1.2.0", "1.2.3", "1.10.0"});
    f.semver = ">=2.0.0-rc1";
    CHECK(apply(f) == std::vector<std::string>{"2.0.0-rc1", "2.0.0"});
  }
  SUBCASE("latest N by semantic version, newest first") {
    migrate::TagFilter f;
    f.latest = 3;
    CHECK(apply(f) == std::vector<std::string>{"2.0.0", "2.0.0-rc1", "1.10.0"});
  }
  SUBCASE("latest N among tags that are not all versions: by creation time, newest first") {
    migrate::TagFilter f;
    f.latest = 3;
    std::vector<std::string> asked;
    auto created = [&](const std::vector<std::string>& t) -> http::Result<std::map<std::string, double>> {
      asked = t;
      return std::map<std::string, double>{{"latest", 500}, {"1.0.0", 100}, {"nightly-2026", 900}, {"2.0.0", 300},
                                           {"1.2.3", 700}}; // the others have no time: oldest
    };
    CHECK(f.apply(tags, created).value() == std::vector<std::string>{"nightly-2026", "1.2.3", "latest"});
    CHECK(asked == tags);
    f.regex = R"([0-9.]+)"; // only versions left: semantic order, no lookup
    asked.clear();
    CHECK(f.apply(tags, created).value() == std::vector<std::string>{"2.0.0", "1.10.0", "1.2.3"});
    CHECK(asked.empty());
    f.regex.clear();
    auto broken = [](const std::vector<std::string>&) -> http::Result<std::map<std::string, double>> {
      return http::make_error(http::ErrorKind::network, "registry down");
    };
    CHECK_FALSE(f.apply(tags, broken).has_value());
  }
  SUBCASE("validation") {
    migrate::TagFilter f;
    f.regex = "(";
    CHECK(f.validate().find("invalid regular expression") == 0);
    f.regex.clear();
    f.semver = ">=banana";
    CHECK(f.validate().find("invalid semver range") == 0);
  }
  SUBCASE("semver ordering") {
    CHECK(migrate::compare(*migrate::SemVer::parse("1.10.0"), *migrate::SemVer::parse("1.9.9")) > 0);
    CHECK(migrate::compare(*migrate::SemVer::parse("2.0.0-rc1"), *migrate::SemVer::parse("2.0.0")) < 0);
    CHECK(migrate::compare(*migrate::SemVer::parse("v1.2"), *migrate::SemVer::parse("1.2.0")) == 0);
    CHECK_FALSE(migrate::SemVer::parse("latest"));
    CHECK_FALSE(migrate::SemVer::parse("1.2.3.4"));
    CHECK_FALSE(migrate::SemVer::parse(""));
  }
}

TEST_CASE("migrate::read_rules: tag filters") {
  std::vector<migrate::RuleError> errors;
  auto rules = migrate::read_rules(nlohmann::json::parse(R"({
    "src.io/ns/app:/^1\\..*$/": "dst.io/ns/app",
    "src.io/ns/db": {"destination": ["dst.io/ns/db", "dst2.io/ns/db"], "tags": {"semver": ">=15", "latest": 2}},
    "src.io/ns/bad": {"destination": "dst.io/ns/bad", "tags": {"regex": "("}},
    "src.io/ns/odd": {"to": "dst.io/ns/odd"}
  })"), "images.yaml", errors);
  REQUIRE(rules.size() == 3); // keys in sorted order
  CHECK(rules[0].source == "src.io/ns/app");
  CHECK(rules[0].tags.regex == "^1\\..*$");
  CHECK(rules[0].name() == "src.io/ns/app:/^1\\..*$/");
  CHECK(rules[1].tags.latest == 2);
  CHECK(rules[2].destination == "dst2.io/ns/db");
  REQUIRE(errors.size() == 2);
  CHECK(errors[0].rule == "src.io/ns/bad");
  CHECK(errors[1].message.find("unknown field \"to\"") != std::string::npos);

  auto tags = fake_tags({{"src.io/ns/app", {"1.0", "1.1", "2.0", "latest"}}, {"src.io/ns/db", {"14.1", "15.2", "16.0", "16.1"}}});
  auto e = migrate::expand_rules(rules, Defaults{}, tags);
  CHECK(e.errors.empty());
  CHECK(pairs(e) == std::vector<std::string>{
                        "src.io/ns/app:1.0 -> dst.io/ns/app:1.0", "src.io/ns/app:1.1 -> dst.io/ns/app:1.1",
                        "src.io/ns/db:16.1 -> dst.io/ns/db:16.1", "src.io/ns/db:16.0 -> dst.io/ns/db:16.0",
                        "src.io/ns/db:16.1 -> dst2.io/ns/db:16.1", "src.io/ns/db:16.0 -> dst2.io/ns/db:16.0"});
  auto none = migrate::expand_rules({{"src.io/ns/app", "dst.io/ns/app", [] { migrate::TagFilter f; f.regex = "9.*"; return f; }(), ""}},
                                    Defaults{}, tags);
  REQUIRE(none.errors.size() == 1);
  CHECK(none.errors[0].message.find("no tag of src.io/ns/app passes the tag filter (4 listed)") == 0);
}

TEST_CASE("migrate::expand_namespaces") {
  auto catalog = [](const std::string& host, const std::string&) -> http::Result<std::vector<std::string>> {
    if (host != "src.io")
      return http::make_error(http::ErrorKind::unauthorized, "registry " + host + " refuses its catalog");
    return std::vector<std::string>{"team/a", "team/b/c", "teamster/x", "other/y"};
  };
  Defaults d;
  d.registry = "swr.example.com";
  d.ns = "org";
  std::vector<migrate::RuleError> errors;
  auto rules = migrate::expand_namespaces({{"src.io/team/*", "dst.io/new/*", {}, ""},
                                           {"src.io/other/*", "", {}, ""},
                                           {"src.io/team/a:1", "dst.io/x/a", {}, ""},
                                           {"no.io/team/*", "dst.io/x/*", {}, ""},
                                           {"src.io/team/*", "dst.io/x/y", {}, ""}},
                                          d, catalog, errors);
  std::vector<std::string> got;
  for (const auto& r : rules)
    got.push_back(r.source + " -> " + r.destination + " [" + r.name() + "]");
  CHECK(got == std::vector<std::string>{"src.io/team/a -> dst.io/new/a [src.io/team/*]",
                                         "src.io/team/b/c -> dst.io/new/b/c [src.io/team/*]",
                                         "src.io/other/y -> swr.example.com/org/y [src.io/other/*]",
                                         "src.io/team/a:1 -> dst.io/x/a [src.io/team/a:1]"});
  REQUIRE(errors.size() == 2);
  CHECK(errors[0].message == "registry no.io refuses its catalog");
  CHECK(errors[1].message.find("a rule copies one repository, or a whole namespace") == 0);
  // The rule is named by what it says and where it is written down, not as "rule 1:" (which reads
  // like the first rule of the user's file).
  CHECK(errors[1].message.find("(rule 1 of the images file format, see the README)") != std::string::npos);
  // Without a catalog lister the rule stays and expand_rules reports rule 1.
  errors.clear();
  auto kept = migrate::expand_namespaces({{"src.io/team/*", "", {}, ""}}, d, {}, errors);
  auto e = migrate::expand_rules(kept, d, fake_tags({}));
  REQUIRE(e.errors.size() == 1);
  CHECK(e.errors[0].message.find("rule 1 of the images file format") != std::string::npos);
  // An empty destination without defaults: one error for the rule, and no catalog asked for.
  errors.clear();
  int listed = 0;
  auto counting = [&](const std::string& host, const std::string& ns) { ++listed; return catalog(host, ns); };
  CHECK(migrate::expand_namespaces({{"src.io/team/*", "", {}, ""}}, Defaults{}, counting, errors).empty());
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].rule == "src.io/team/*");
  CHECK(errors[0].message.find("an empty destination needs a default registry") == 0);
  CHECK(listed == 0);
}

TEST_CASE("migrate::expand_rules: tasks stream out while later repositories are still listed") {
  // The lister of "slow" waits until the tasks of the first rule have been handed on: an expansion
  // that lists every repository before handing on anything would keep it waiting until the timeout.
  std::promise<void> first_rule_seen;
  auto seen = first_rule_seen.get_future().share();
  std::atomic<int> fast_lists{0}, slow_lists{0};
  migrate::TagLister lister = [&](const registry::Reference& ref) -> http::Result<std::vector<std::string>> {
    if (ref.name() == "src.io/ns/slow") {
      ++slow_lists;
      if (seen.wait_for(std::chrono::seconds(20)) != std::future_status::ready)
        return http::make_error(http::ErrorKind::network, "the first rule's tasks were held back");
      return std::vector<std::string>{"s1"};
    }
    ++fast_lists;
    return std::vector<std::string>{"f1", "f2"};
  };
  std::vector<std::string> streamed;
  auto e = migrate::expand_rules({{"src.io/ns/fast", "dst.io/x/fast", {}, ""},
                                  {"src.io/ns/slow", "dst.io/x/slow", {}, ""},
                                  {"src.io/ns/fast", "dst.io/y/fast", {}, ""}},
                                 Defaults{}, lister, {}, [&](const migrate::ImageTask& t) {
                                   streamed.push_back(t.source.to_string() + " -> " + t.destination.to_string());
                                   if (streamed.size() == 2)
                                     first_rule_seen.set_value();
                                 });
  CHECK(e.errors.empty());
  CHECK(e.tasks.empty()); // handed on, not kept: a catalogue's tasks are not all held at once
  CHECK(e.count == streamed.size());
  CHECK(streamed == std::vector<std::string>{"src.io/ns/fast:f1 -> dst.io/x/fast:f1", "src.io/ns/fast:f2 -> dst.io/x/fast:f2",
                                             "src.io/ns/slow:s1 -> dst.io/x/slow:s1", "src.io/ns/fast:f1 -> dst.io/y/fast:f1",
                                             "src.io/ns/fast:f2 -> dst.io/y/fast:f2"});
  CHECK(fast_lists == 1); // one list per repository, however many rules name it
  CHECK(slow_lists == 1);
}

TEST_CASE("migrate::expand_rules: what a lister throws reaches the caller") {
  migrate::TagLister lister = [](const registry::Reference&) -> http::Result<std::vector<std::string>> {
    throw migrate::ConfigError("docker-credential-x failed");
  };
  CHECK_THROWS_WITH_AS(migrate::expand_rules({{"src.io/ns/a", "dst.io/x/a", {}, ""}}, Defaults{}, lister),
                       "docker-credential-x failed", migrate::ConfigError);
}

TEST_CASE("migrate::rule_endpoints") {
  Defaults d;
  d.registry = "swr.example.com";
  d.ns = "org";
  auto refs = migrate::rule_endpoints({{"src.io/ns/a:1", "", {}, ""}, {"BAD REF", "dst.io/x", {}, ""},
                                       {"src.io/ns/c", "dst.io/x/c:tag", {}, ""},
                                       {"src.io/ns/b", "dst.io/x/b", {}, ""}},
                                      d);
  std::vector<std::string> got;
  for (const auto& r : refs)
    got.push_back(r.to_string());
  std::string all;
  for (const auto& g : got)
    all += g + " ";
  INFO(all);
  CHECK(got == std::vector<std::string>{"src.io/ns/a:1", "swr.example.com/org/a", "src.io/ns/b", "dst.io/x/b"});
}

TEST_CASE("migrate::resolve_rules: parsed once, read by sharding, endpoints and expansion") {
  std::vector<migrate::Rule> rules = {{"src.io/ns/app:1", "dst.io/o/app", {}, ""}, {"BAD REF", "dst.io/x", {}, ""}, {"src.io/ns/lib", "", {}, ""}};
  Defaults d;
  d.registry = "dst.io";
  d.ns = "mirror";
  migrate::resolve_rules(rules, d);
  REQUIRE(rules[0].resolved);
  CHECK(rules[0].resolved->error.empty());
  CHECK(rules[0].resolved->destination.to_string() == "dst.io/o/app");
  CHECK_FALSE(rules[1].resolved->error.empty());
  CHECK(rules[2].resolved->destination.to_string() == "dst.io/mirror/lib");
  // What the functions read is the resolved value, not the text: change the text behind it and the
  // result follows the resolution (a second parse would see the change).
  rules[0].destination = "elsewhere.io/z/zz";
  auto endpoints = migrate::rule_endpoints(rules, Defaults{});
  REQUIRE(endpoints.size() == 4);
  CHECK(endpoints[1].to_string() == "dst.io/o/app");
  CHECK(endpoints[3].to_string() == "dst.io/mirror/lib"); // the defaults it was resolved with
  auto e = migrate::expand_rules(rules, Defaults{}, fake_tags({{"src.io/ns/lib", {"1"}}}));
  REQUIRE(e.tasks.size() == 2);
  CHECK(e.tasks[0].destination.to_string() == "dst.io/o/app:1");
  CHECK(e.tasks[1].destination.to_string() == "dst.io/mirror/lib:1");
  REQUIRE(e.errors.size() == 1);
  CHECK(e.errors[0].rule == "BAD REF");
}

TEST_CASE("migrate::expand_rules lists a bounded number of repositories ahead, and each once") {
  // 300 rules over 200 repositories (the first 100 named twice, the second time 200 rules later):
  // every list is fetched once, every tag copied once per rule, and while a rule is expanded the
  // lists started are never more than a window ahead of it (a catalogue's lists are not held at once).
  std::vector<migrate::Rule> rules;
  auto repo = [](int i) { return "src.io/ns/r" + std::to_string(i); };
  for (int i = 0; i < 200; ++i)
    rules.push_back({repo(i), "dst.io/o/r" + std::to_string(i)});
  for (int i = 0; i < 100; ++i)
    rules.push_back({repo(i), "dst.io/copy/r" + std::to_string(i)});
  std::mutex m;
  std::map<std::string, int> listed;
  migrate::TagLister tags = [&](const registry::Reference& r) -> http::Result<std::vector<std::string>> {
    std::lock_guard lock(m);
    ++listed[r.name()];
    return std::vector<std::string>{"1", "2"};
  };
  std::size_t tasks = 0, most_ahead = 0;
  std::set<std::string> expanded; // source repositories whose tasks came
  migrate::Scheduler scheduler(4);
  auto e = migrate::expand_rules(
      rules, Defaults{}, tags, {},
      [&](const migrate::ImageTask& t) {
        ++tasks;
        expanded.insert(t.source.name());
        std::lock_guard lock(m);
        most_ahead = std::max(most_ahead, listed.size() - expanded.size());
      },
      &scheduler);
  CHECK(e.errors.empty());
  CHECK(tasks == 600);
  CHECK(e.count == 600);
  CHECK(listed.size() == 200);
  for (const auto& [name, times] : listed)
    CHECK_MESSAGE(times == 1, name);
  CHECK(most_ahead <= 33);
  CHECK(most_ahead >= 1); // the window is used: lists are fetched ahead
}
