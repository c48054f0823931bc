// Dependencies point one way: cmd -> migrate -> {registry, kube} -> http -> util (registry and kube never
// include each other). This test reads every
// source file and fails when an include points the other way.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>

TEST_CASE("layering: includes point one way") {
  const std::map<std::string, std::set<std::string>> allowed = {
      {"util", {"util"}},
      {"http", {"http", "util"}},
      {"registry", {"registry", "http", "util"}},
      {"kube", {"kube", "http", "util"}},
      {"migrate", {"migrate", "registry", "kube", "http", "util"}},
      {"cmd", {"cmd", "migrate", "registry", "kube", "http", "util"}},
  };
  const std::regex include_re(R"re(#include\s+"(\w+)/)re");
  int files = 0;
  for (const auto& [folder, ok] : allowed) {
    auto dir = std::filesystem::path(IM_SOURCE_DIR) / folder;
    if (!std::filesystem::exists(dir))
      continue;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
      auto ext = entry.path().extension();
      if (ext != ".cpp" && ext != ".hpp")
        continue;
      ++files;
      std::ifstream in(entry.path());
      std::string line;
      while (std::getline(in, line)) {
        std::smatch m;
        if (std::regex_search(line, m, include_re) && allowed.count(m[1])) {
          CAPTURE(entry.path().string());
          CAPTURE(line);
          CHECK(ok.count(m[1]) == 1);
        }
      }
    }
  }
  CHECK(files > 10);
}
