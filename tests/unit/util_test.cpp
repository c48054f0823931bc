// util: the safe file writer, depth-limited JSON, control-character escaping.
#include "tests/unit/temp_dir.hpp"
#include "util/env.hpp"
#include "util/file.hpp"
#include "util/json.hpp"
#include "util/text.hpp"
#include "util/time.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>

#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {
std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}
mode_t mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}
} // namespace

TEST_CASE("util::write_file_atomically") {
  test::TempDir dir;
  const std::string target = dir.str() + "/out.json";

  SUBCASE("writes the content with the mode, leaves no temporary file") {
    ::umask(022);
    REQUIRE(util::write_file_atomically(target, "secret\n", 0600) == "");
    CHECK(dir.read("out.json") == "secret\n");
    CHECK(mode_of(target) == 0600);
    CHECK(names_in(dir.path()) == std::vector<std::string>{"out.json"});
    REQUIRE(util::write_file_atomically(target, "new", 0644) == "");
    CHECK(dir.read("out.json") == "new");
    CHECK(mode_of(target) == 0644);
  }
  SUBCASE("a symlink at the target is replaced, never written through") {
    const std::string victim = dir.write("victim", "keep me");
    fs::create_symlink(victim, target);
    REQUIRE(util::write_file_atomically(target, "mine", 0600) == "");
    CHECK(dir.read("victim") == "keep me");
    CHECK(!fs::is_symlink(target));
    CHECK(dir.read("out.json") == "mine");
  }
  SUBCASE("errors name the path") {
    auto why = util::write_file_atomically(dir.str() + "/missing/out.json", "x");
    CHECK(why.find(dir.str() + "/missing/out.json") == 0);
    CHECK(why.find("does not exist") != std::string::npos);
    CHECK(util::write_file_atomically(dir.str(), "x").find("is a directory") != std::string::npos);
    CHECK(util::unwritable(dir.str() + "/missing/x") != "");
    CHECK(util::unwritable(target) == "");
    CHECK(!fs::exists(target)); // the probe leaves nothing behind
  }
  SUBCASE("the temporary name is not predictable") {
    // Two files being written at once into one directory get different names, neither derived from the pid.
    util::AtomicFile a(target, 0600), b(target, 0600);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    auto names = names_in(dir.path());
    REQUIRE(names.size() == 2);
    CHECK(names[0] != names[1]);
    for (const auto& n : names)
      CHECK(n.find(std::to_string(::getpid())) == std::string::npos);
  }
  SUBCASE("commit(false) never replaces what is there") {
    dir.write("out.json", "theirs");
    util::AtomicFile f(target, 0600);
    REQUIRE(f.write("mine"));
    CHECK(!f.commit(false));
    CHECK(f.exists());
    CHECK(dir.read("out.json") == "theirs");
    CHECK(names_in(dir.path()) == std::vector<std::string>{"out.json"});
  }
}

TEST_CASE("util::open_for_append and FileLock do not follow symlinks") {
  test::TempDir dir;
  const std::string victim = dir.write("victim", "keep me");
  fs::create_symlink(victim, dir.str() + "/log");
  CHECK(util::open_for_append(dir.str() + "/log") < 0);
  fs::create_symlink(victim, dir.str() + "/x.lock");
  util::FileLock lock(dir.str() + "/x.lock");
  CHECK(!lock.held());
  CHECK(dir.read("victim") == "keep me");
  util::FileLock real(dir.str() + "/y.lock");
  CHECK(real.held());
}

TEST_CASE("util::make_private_directories") {
  test::TempDir dir;
  REQUIRE(util::make_private_directories(dir.str() + "/a/b") == 0);
  CHECK(mode_of(dir.str() + "/a") == 0700);
  CHECK(mode_of(dir.str() + "/a/b") == 0700);
}

TEST_CASE("util::parse_json") {
  CHECK(util::parse_json(R"({"a":[1,{"b":2}]})")["a"][1]["b"] == 2);
  std::string deep(util::max_json_depth, '['), deeper(util::max_json_depth + 1, '[');
  deep += std::string(util::max_json_depth, ']');
  deeper += std::string(util::max_json_depth + 1, ']');
  CHECK_NOTHROW(util::parse_json(deep));
  CHECK_THROWS_AS(util::parse_json(deeper), nlohmann::json::parse_error);
  // A body of 120 KB of '[' (what a hostile registry sends) is refused, not a stack overflow.
  CHECK_THROWS_AS(util::parse_json(std::string(120000, '[')), nlohmann::json::parse_error);
  CHECK_THROWS_AS(util::parse_json(std::string(60000, '{') ), nlohmann::json::parse_error);
  CHECK_THROWS_AS(util::parse_json("{\"a\":"), nlohmann::json::parse_error);
  auto ordered = util::parse_json<nlohmann::ordered_json>(R"({"z":1,"a":2})");
  CHECK(ordered.begin().key() == "z");
  CHECK(util::string_field(nlohmann::json::parse(R"({"a":1,"b":"x"})"), "a") == "");
  CHECK(util::string_field(nlohmann::json::parse(R"({"a":1,"b":"x"})"), "b") == "x");
}

TEST_CASE("util::escape_control") {
  CHECK(util::escape_control("plain tag v1.2") == "plain tag v1.2");
  CHECK(util::escape_control("a\nb\rc\td") == "a\\nb\\rc\\td");
  CHECK(util::escape_control("\x1b[2Jx") == "\\x1b[2Jx");
  CHECK(util::escape_control(std::string("nul\0x", 5)) == "nul\\x00x");
  CHECK(util::escape_control("back\\slash") == "back\\slash");
  CHECK(util::escape_control(util::escape_control("a\nb")) == util::escape_control("a\nb"));
  CHECK(util::escape_control("\x7f") == "\\x7f");
  CHECK(util::escape_control("caf\xc3\xa9 \xe2\x82\xac") == "caf\xc3\xa9 \xe2\x82\xac"); // UTF-8 kept
  CHECK(util::escape_control("\xc2\x9b" "31m") == "\\xc2\\x9b31m");                     // C1 CSI in UTF-8
  CHECK(util::escape_control("\x9b" "31m") == "\\x9b31m");                              // a raw C1 byte
  CHECK(util::escape_control("\xff\xfe") == "\\xff\\xfe");                              // not UTF-8
}

TEST_CASE("remote JSON is parsed only through util::parse_json") {
  // A json::parse anywhere else could be handed a "[[[[..." body and overflow the stack downstream.
  const std::regex direct(R"((nlohmann::(ordered_)?json|\bjson)::parse\()");
  int files = 0;
  std::vector<std::string> offenders;
  for (const char* folder : {"http", "registry", "kube", "migrate", "cmd"})
    for (const auto& entry : fs::recursive_directory_iterator(fs::path(IM_SOURCE_DIR) / folder)) {
      if (entry.path().extension() != ".cpp" && entry.path().extension() != ".hpp")
        continue;
      ++files;
      std::ifstream in(entry.path());
      std::string line;
      for (int n = 1; std::getline(in, line); ++n)
        if (std::regex_search(line, direct))
          offenders.push_back(entry.path().string() + ":" + std::to_string(n));
    }
  CHECK(files > 20);
  CHECK(offenders == std::vector<std::string>{});
}

TEST_CASE("util::parse_rfc3339: absolute epochs") {
  // Each against the epoch `date -u -d ... +%s` gives, not against another parse.
  CHECK(util::parse_rfc3339("1970-01-01T00:00:00Z") == 0.0);
  CHECK(util::parse_rfc3339("2024-05-01T12:00:00Z") == 1714564800.0);
  CHECK(util::parse_rfc3339("2024-05-01T14:00:00+02:00") == 1714564800.0);
  CHECK(util::parse_rfc3339("2024-05-01T07:30:00-04:30") == 1714564800.0);
  CHECK(util::parse_rfc3339("2024-05-01t12:00:00z") == 1714564800.0);
  CHECK(util::parse_rfc3339("2024-05-01 12:00:00Z") == 1714564800.0);
  CHECK(util::parse_rfc3339("2024-05-01T12:00:00.5Z") == 1714564800.5);
  CHECK(util::parse_rfc3339("2024-05-01T12:00:00.123456789Z").value() == doctest::Approx(1714564800.123456789));
  CHECK(util::parse_rfc3339("2026-11-24T08:00:00Z") == 1795507200.0);
  CHECK(util::parse_rfc3339("2016-12-31T23:59:60Z") == 1483228800.0); // a leap second: the next one
  REQUIRE(util::parse_rfc3339_time("2030-01-02T03:04:05.9Z"));
  CHECK(std::chrono::system_clock::to_time_t(*util::parse_rfc3339_time("2030-01-02T03:04:05.9Z")) == 1893553445);
  for (const char* bad : {"2024-05-01", "2024-13-01T12:00:00Z", "2024-05-01T12:00:00", "yesterday", "2024-05-01T24:00:00Z",
                          "2024-05-01T12:00:00.Z", "2024-05-01T12:00:00+2:00", "2024-05-01T12:00:00+02:60", "2024-05-01T12:00:00Zjunk", ""})
    CHECK_MESSAGE(!util::parse_rfc3339(bad), bad);
  CHECK(util::format_rfc3339(std::chrono::system_clock::from_time_t(1714564800)) == "2024-05-01T12:00:00Z");
}

TEST_CASE("util::closest_word: a plausible typo, or nothing") {
  const std::vector<std::string> words = {"namespaces", "kubeconfig", "context", "tag"};
  CHECK(util::closest_word("namesapces", words) == "namespaces"); // two neighbours swapped
  CHECK(util::closest_word("kubeconfg", words) == "kubeconfig");  // a letter left out
  CHECK(util::closest_word("contexts", words) == "context");      // one too many
  CHECK(util::closest_word("tga", words) == "tag");               // a swap in a short word
  CHECK(util::closest_word("images", words).empty());             // nothing close
  CHECK(util::closest_word("zz", {"ab"}).empty());                // as many edits as letters: no
  CHECK(util::closest_word("zb", {"ab"}) == "ab");
  CHECK(util::closest_word("x", {}).empty());
}

TEST_CASE("util::join") {
  CHECK(util::join({}, ", ").empty());
  CHECK(util::join({"a"}, ", ") == "a");
  CHECK(util::join({"a", "", "c"}, ", ") == "a, , c");
}

TEST_CASE("util::child_environment: this process's environment, with overrides") {
  ::setenv("IM_UNIT_CHILD_ENV", "parent", 1);
  const auto env = util::child_environment({{"IM_UNIT_CHILD_ENV", "child"}, {"IM_UNIT_ADDED", "x=y"}});
  CHECK(std::count(env.begin(), env.end(), "IM_UNIT_CHILD_ENV=child") == 1);
  CHECK(std::count(env.begin(), env.end(), "IM_UNIT_CHILD_ENV=parent") == 0);
  CHECK(std::count(env.begin(), env.end(), "IM_UNIT_ADDED=x=y") == 1);
  CHECK(std::count_if(env.begin(), env.end(), [](const std::string& e) { return e.rfind("PATH=", 0) == 0; }) ==
        (std::getenv("PATH") ? 1 : 0)); // the rest inherited
  ::unsetenv("IM_UNIT_CHILD_ENV");
}
