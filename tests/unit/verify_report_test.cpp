#include "migrate/verify_report.hpp"

#include <doctest/doctest.h>

#include <sstream>

namespace {

migrate::VerifyResult result(const std::string& source, const std::string& destination, const std::string& src_digest,
                             const std::string& dst_digest) {
  migrate::VerifyResult v;
  v.task.source = *registry::Reference::parse_explicit(source);
  v.task.destination = *registry::Reference::parse_explicit(destination);
  v.source_digest = src_digest;
  v.destination_digest = dst_digest;
  return v;
}

const std::string a = "sha256:" + std::string(64, 'a');
const std::string b = "sha256:" + std::string(64, 'b');

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string line; std::getline(ss, line);)
    out.push_back(line);
  return out;
}

} // namespace

TEST_CASE("migrate::verify_status and counts") {
  auto same = result("s.io/ns/a:1", "d.io/ns/a:1", a, a);
  auto different = result("s.io/ns/b:1", "d.io/ns/b:1", a, b);
  auto missing = result("s.io/ns/c:1", "d.io/ns/c:1", a, "");
  auto error = result("s.io/ns/d:1", "d.io/ns/d:1", "", "");
  error.error = "connection refused";
  auto incomplete = result("s.io/ns/e:1", "d.io/ns/e:1", a, a);
  incomplete.missing = {b};
  auto filtered = result("s.io/ns/f:1", "d.io/ns/f:1", a, b);
  filtered.filtered_digest = b;
  CHECK(migrate::to_string(migrate::verify_status(same)) == "SAME");
  CHECK(migrate::to_string(migrate::verify_status(different)) == "DIFFERENT");
  CHECK(migrate::to_string(migrate::verify_status(missing)) == "MISSING");
  CHECK(migrate::to_string(migrate::verify_status(error)) == "ERROR");
  CHECK(migrate::to_string(migrate::verify_status(incomplete)) == "INCOMPLETE");
  CHECK(migrate::to_string(migrate::verify_status(filtered)) == "SAME");
  auto counts = migrate::verify_counts({same, different, missing, error, incomplete, filtered}, 1);
  CHECK(counts.same == 2);
  CHECK(counts.different == 1);
  CHECK(counts.missing == 1);
  CHECK(counts.errors == 1);
  CHECK(counts.incomplete == 1);
  CHECK(counts.images() == 6);
  CHECK_FALSE(counts.all_same());
  CHECK(migrate::verify_counts({same, filtered}, 0).all_same());
  CHECK_FALSE(migrate::verify_counts({same}, 1).all_same()); // a failed rule fails verify
}

TEST_CASE("migrate::short_digest") {
  CHECK(migrate::short_digest(a) == "sha256:aaaaaaaaaaaa");
  CHECK(migrate::short_digest("") == "-");
  CHECK(migrate::short_digest("sha512:" + std::string(128, 'c')) == "sha512:cccccccccccc");
  CHECK(migrate::short_digest("sha256:abc") == "sha256:abc");
}

TEST_CASE("migrate::verify_table: aligned columns") {
  auto same = result("s.io/ns/a:1", "d.io/ns/a:1", a, a);
  auto missing = result("s.io/ns/a-much-longer-name:1", "d.io/x/y:1", a, "");
  auto filtered = result("s.io/ns/f:1", "d.io/ns/f:1", a, b);
  filtered.filtered_digest = b;
  std::vector<migrate::VerifyResult> results{same, missing, filtered};
  auto table = lines(migrate::verify_table(results, migrate::verify_counts(results, 0), false));
  REQUIRE(table.size() == 5);
  CHECK(table[0] == "STATUS   SOURCE                        DESTINATION  SOURCE DIGEST                   DESTINATION DIGEST");
  CHECK(table[1] == "SAME     s.io/ns/a:1                   d.io/ns/a:1  sha256:aaaaaaaaaaaa             sha256:aaaaaaaaaaaa");
  CHECK(table[2] == "MISSING  s.io/ns/a-much-longer-name:1  d.io/x/y:1   sha256:aaaaaaaaaaaa             -");
  CHECK(table[3] == "SAME     s.io/ns/f:1                   d.io/ns/f:1  sha256:bbbbbbbbbbbb (filtered)  sha256:bbbbbbbbbbbb");
  CHECK(table[4] == "verified 3 image(s): 2 same, 0 different, 1 missing, 0 errors, 0 rules failed");
  auto deep = lines(migrate::verify_table(results, migrate::verify_counts(results, 0), true));
  CHECK(deep.back() == "verified 3 image(s): 2 same, 0 different, 1 missing, 0 errors, 0 rules failed, 0 incomplete");
}

TEST_CASE("migrate::verify_json: full digests, null when unknown, the reasons") {
  auto same = result("s.io/ns/a:1", "d.io/ns/a:1", a, a);
  auto missing = result("s.io/ns/c:1", "d.io/ns/c:1", a, "");
  auto error = result("s.io/ns/d:1", "d.io/ns/d:1", "", "");
  error.error = "connection refused";
  auto incomplete = result("s.io/ns/e:1", "d.io/ns/e:1", a, a);
  incomplete.missing = {b};
  std::vector<migrate::VerifyResult> results{same, missing, error, incomplete};
  std::vector<migrate::RuleError> rule_errors{{"s.io/ns/*", "refused", std::nullopt}};
  auto j = migrate::verify_json(results, rule_errors, migrate::verify_counts(results, rule_errors.size()));
  REQUIRE(j["images"].size() == 4);
  CHECK(j["images"][0] == nlohmann::json{{"status", "same"},
                                          {"source", "s.io/ns/a:1"},
                                          {"destination", "d.io/ns/a:1"},
                                          {"source_digest", a},
                                          {"destination_digest", a}});
  CHECK(j["images"][1]["status"] == "missing");
  CHECK(j["images"][1]["destination_digest"].is_null());
  CHECK(j["images"][2]["status"] == "error");
  CHECK(j["images"][2]["source_digest"].is_null());
  CHECK(j["images"][2]["error"] == "connection refused");
  CHECK(j["images"][3]["status"] == "incomplete");
  CHECK(j["images"][3]["missing"] == nlohmann::json::array({b}));
  CHECK(j["rule_errors"] == nlohmann::json::array({{{"rule", "s.io/ns/*"}, {"error", "refused"}}}));
  CHECK(j["summary"] == nlohmann::json{{"images", 4},     {"same", 1},       {"different", 0}, {"missing", 1},
                                       {"incomplete", 1}, {"errors", 1},     {"rules_failed", 1}});
}
