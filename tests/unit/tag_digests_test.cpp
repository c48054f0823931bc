#include "migrate/blob_locations.hpp"
#include "migrate/hint_file.hpp"
#include "migrate/tag_digests.hpp"

#include "temp_dir.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>
#include <thread>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;
using migrate::TagDigests;

using test::TempDir;

namespace {

const std::string d1 = "sha256:" + std::string(64, 'a');
const std::string d2 = "sha256:" + std::string(64, 'b');

long today() { return static_cast<long>(std::time(nullptr) / 86400); }

} // namespace

TEST_CASE("migrate::TagDigests saves what it saw and reads it back") {
  TempDir t;
  const fs::path file = t.path() / "cache" / "image-migrator" / "tag-digests";
  {
    TagDigests c(file); // no file yet: empty
    CHECK_FALSE(c.find("r.io/app:1"));
    c.remember("r.io/app:1", d1);
    c.remember("r.io/app:2", d1);
    c.remember("r.io/app:2", d2);           // the tag moved: the last digest counts
    c.remember("r.io/app:3", "sha256:short"); // not a digest: not kept
    c.remember("r.io/app 4", d1);           // a reference with a space: not kept
    REQUIRE_FALSE(c.save());
  }
  CHECK((fs::status(file).permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write));
  // The directories it created are its own.
  CHECK((fs::status(file.parent_path()).permissions() & fs::perms::all) == fs::perms::owner_all);
  CHECK((fs::status(file.parent_path().parent_path()).permissions() & fs::perms::all) == fs::perms::owner_all);
  TagDigests c(file);
  CHECK(c.find("r.io/app:1") == d1);
  CHECK(c.find("r.io/app:2") == d2);
  CHECK_FALSE(c.find("r.io/app:3"));
  CHECK_FALSE(c.find("r.io/app 4"));
  const std::string text = t.read("cache/image-migrator/tag-digests");
  CHECK((text.find("r.io/app:2 " + d2 + " " + std::to_string(today())) != std::string::npos ||
         text.find("r.io/app:2 " + d2 + " " + std::to_string(today() - 1)) != std::string::npos)); // midnight
  // Nothing left behind but the file and its lock.
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(file.parent_path()))
    names.insert(e.path().filename().string());
  CHECK(names == std::set<std::string>{"tag-digests", "tag-digests.lock"});
}

TEST_CASE("migrate::TagDigests leaves the mode of a directory it did not create") {
  TempDir t;
  fs::permissions(t.path(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec);
  TagDigests c(t.path() / "tag-digests");
  c.remember("r.io/app:1", d1);
  REQUIRE_FALSE(c.save());
  CHECK((fs::status(t.path()).permissions() & fs::perms::all) ==
        (fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec));
  CHECK((fs::status(t.path() / "tag-digests").permissions() & fs::perms::all) ==
        (fs::perms::owner_read | fs::perms::owner_write));
}

TEST_CASE("migrate::TagDigests drops lines that do not parse") {
  TempDir t;
  const fs::path file = t.path() / "f";
  const long day = today();
  std::ofstream(file) << "# comment\n"
                      << "\n"
                      << "r.io/ok:1 " << d1 << " " << day << "\n"
                      << "r.io/bad-digest:1 sha256:xyz " << day << "\n"
                      << "r.io/sha512-short:1 sha512:" << std::string(64, 'a') << " " << day << "\n"
                      << "r.io/extra:1 " << d1 << " " << day << " more\n"
                      << "r.io/few:1 " << d1 << "\n"
                      << "r.io/day:1 " << d1 << " 12x\n"
                      << "r.io/negative:1 " << d1 << " -3\n"
                      << "r.io/upper:1 sha256:" << std::string(64, 'A') << " " << day << "\n"
                      << "r.io/ok:2\t" << d2 << "\t" << day << "\n";
  TagDigests c(file);
  CHECK(c.find("r.io/ok:1") == d1);
  CHECK(c.find("r.io/ok:2") == d2);
  for (const char* bad : {"r.io/bad-digest:1", "r.io/sha512-short:1", "r.io/extra:1", "r.io/few:1", "r.io/day:1",
                          "r.io/negative:1", "r.io/upper:1"})
    CHECK_MESSAGE(!c.find(bad), bad);
  // Binary garbage is an empty cache, not a failure.
  std::ofstream(t.path() / "g") << std::string("\0\xff\xfe garbage\n\n\x01", 15);
  TagDigests g(t.path() / "g");
  CHECK_FALSE(g.find("garbage"));
}

TEST_CASE("migrate::TagDigests merges with a run that saved meanwhile, and forgets unused tags") {
  TempDir t;
  const fs::path file = t.path() / "f";
  const long day = today(); // a day apart at most from the saves' (midnight): the margins below allow it
  std::ofstream(file) << "r.io/old:1 " << d1 << " " << day - TagDigests::keep_days - 2 << "\n"
                      << "r.io/old:2 " << d1 << " " << day - TagDigests::keep_days + 1 << "\n"
                      << "r.io/old:3 " << d1 << " " << day - 400 << "\n"
                      << "r.io/future:1 " << d1 << " " << day + 5 << "\n";
  TagDigests a(file), b(file);
  CHECK(a.find("r.io/old:3")); // used by this run: kept, and dated the save's day
  a.remember("r.io/a:1", d1);
  a.remember("r.io/both:1", d1);
  b.remember("r.io/b:1", d2);
  b.remember("r.io/both:1", d2);
  REQUIRE_FALSE(a.save());
  REQUIRE_FALSE(b.save()); // the later run's own answers win; the earlier run's others stay
  TagDigests c(file);
  CHECK(c.find("r.io/a:1") == d1);
  CHECK(c.find("r.io/b:1") == d2);
  CHECK(c.find("r.io/both:1") == d2);
  CHECK_FALSE(c.find("r.io/old:1"));
  CHECK(c.find("r.io/old:2"));
  CHECK(c.find("r.io/old:3"));
  CHECK_FALSE(c.find("r.io/future:1")); // dated after today: a clock set back, forgotten
  CHECK(t.read("f").find("r.io/old:3 " + d1 + " " + std::to_string(day - 400)) == std::string::npos);
}

TEST_CASE("migrate::TagDigests waits for a run that is saving, then merges what it saved") {
  TempDir t;
  const fs::path file = t.path() / "f";
  int other = ::open((file.string() + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  REQUIRE(other >= 0);
  REQUIRE(::flock(other, LOCK_EX) == 0); // another run is saving
  TagDigests c(file);
  c.remember("r.io/mine:1", d1);
  std::atomic<bool> saved{false};
  std::optional<std::string> error;
  std::thread saver([&] {
    error = c.save();
    saved = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK_FALSE(saved.load()); // it waits its turn
  std::ofstream(file) << "r.io/theirs:1 " << d2 << " " << today() << "\n"; // what the other run saved
  ::close(other);
  saver.join();
  CHECK_FALSE(error);
  TagDigests after(file);
  CHECK(after.find("r.io/mine:1") == d1);
  CHECK(after.find("r.io/theirs:1") == d2);
}

TEST_CASE("migrate::TagDigests says why it cannot save") {
  TempDir t;
  std::ofstream(t.path() / "file") << "x";
  TagDigests c(t.path() / "file" / "sub" / "tag-digests");
  c.remember("r.io/app:1", d1);
  auto error = c.save();
  REQUIRE(error);
  CHECK(error->find((t.path() / "file" / "sub" / "tag-digests").string() + ": cannot create its directory: ") == 0);
  fs::create_directory(t.path() / "d");
  std::ofstream(t.path() / "d" / "x") << "x";
  TagDigests dir(t.path() / "d"); // the path is a directory
  dir.remember("r.io/app:1", d1);
  auto not_a_file = dir.save();
  REQUIRE(not_a_file);
  CHECK(not_a_file->find((t.path() / "d").string() + ": is a directory, not a file") == 0);
  CHECK(fs::is_directory(t.path() / "d"));
  // The temporary file is gone: only what was there and the lock remain.
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(t.path()))
    names.insert(e.path().filename().string());
  CHECK(names == std::set<std::string>{"d", "d.lock", "file"});
}

TEST_CASE("migrate::TagDigests::default_path follows XDG_CACHE_HOME, then HOME") {
  // The environment is a lookup the library is given: the process's own is not touched.
  std::map<std::string, std::string> vars;
  util::EnvLookup env = [&vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
  test::TempDir d;
  const fs::path home_dir = d.path() / "u";
  fs::create_directories(home_dir);
  vars = {{"XDG_CACHE_HOME", "/x/cache"}, {"HOME", home_dir.string()}};
  CHECK(TagDigests::default_path(env) == fs::path("/x/cache/image-migrator/tag-digests"));
  vars["XDG_CACHE_HOME"] = "";
  CHECK(TagDigests::default_path(env) == home_dir / ".cache/image-migrator/tag-digests");
  vars["XDG_CACHE_HOME"] = "relative/cache"; // the spec: ignored
  CHECK(TagDigests::default_path(env) == home_dir / ".cache/image-migrator/tag-digests");
  // A HOME that does not exist (HOME=/nonexistent in a job) is no place: it would be created.
  vars["HOME"] = (d.path() / "missing").string();
  CHECK(TagDigests::default_path(env).empty());
  vars.clear();
  CHECK(TagDigests::default_path(env).empty());
  CHECK(TagDigests::default_path(nullptr).empty()); // no lookup at all: no variable is set
}

TEST_CASE("migrate::HintFile keeps the most recently used entries beyond its bound") {
  TempDir t;
  const fs::path file = t.path() / "f";
  const long day = today();
  {
    std::ofstream out(file);
    for (int i = 0; i < 6; ++i) // two entries each 3, 2 and 1 days old
      out << "k" << i << " v " << day - 3 + i / 2 << "\n";
  }
  migrate::HintFile h(file, "# test", nullptr, 4);
  h.remember("new", "v"); // used today
  REQUIRE_FALSE(h.save());
  migrate::HintFile after(file, "# test", nullptr, 100);
  CHECK(after.find("new"));
  CHECK_FALSE(after.find("k0")); // the oldest day goes first
  CHECK_FALSE(after.find("k1"));
  CHECK(after.find("k4"));
  CHECK(after.find("k5"));
  CHECK(after.find("k2").has_value() + after.find("k3").has_value() == 1); // one of that day still fits
  CHECK(t.read("f").rfind("# test\n", 0) == 0);
}

TEST_CASE("migrate::BlobLocations keeps only what a mount request could carry") {
  TempDir t;
  const fs::path file = t.path() / "blob-locations";
  const long day = today();
  std::ofstream(file) << "r.io:5000/" << d1 << " org/app " << day << "\n"
                      << "r.io/" << d2 << " ../etc " << day << "\n"           // not a repository name
                      << "r.io/" << d2 << " Org/App " << day << "\n"          // upper case
                      << "bad_host!/" << d1 << " org/app " << day << "\n"     // not a host
                      << "r.io/sha256:xyz org/app " << day << "\n"            // not a digest
                      << "r.io/" << d2 << " org/app%0d%0aX " << day << "\n"; // header injection
  migrate::BlobLocations b(file);
  CHECK(b.find("r.io:5000", d1) == "org/app");
  CHECK_FALSE(b.find("r.io", d2));
  CHECK_FALSE(b.find("bad_host!", d1));
  b.remember("r.io", d2, "team/base");
  b.remember("r.io", d1, "UPPER"); // refused
  b.remember("oci:/srv/x", d1, "x"); // a layout: no registry, not kept
  REQUIRE_FALSE(b.save());
  migrate::BlobLocations again(file);
  CHECK(again.find("r.io", d2) == "team/base");
  CHECK_FALSE(again.find("r.io", d1));
  CHECK_FALSE(again.find("oci:/srv/x", d1));
  CHECK(again.find("r.io:5000", d1) == "org/app"); // what an earlier run saved stays
}

TEST_CASE("migrate::HintFile never overwrites a file that is not one of its caches, nor a device") {
  TempDir t;
  const fs::path json = t.path() / "images.json";
  std::ofstream(json) << "{\"a\": \"b\"}\n";
  CHECK(migrate::HintFile::foreign(json).find("not a cache file of image-migrator") != std::string::npos);
  migrate::BlobLocations b(json);
  b.remember("r.io", d1, "org/app");
  auto error = b.save();
  REQUIRE(error);
  CHECK(error->find("not overwritten") != std::string::npos);
  CHECK(t.read("images.json") == "{\"a\": \"b\"}\n");
  // Its own files, an empty one, a missing one and binary junk (a damaged cache) may be written.
  std::ofstream(t.path() / "junk") << std::string("\0\377garbage\n", 10);
  CHECK(migrate::HintFile::foreign(t.path() / "junk").empty());
  CHECK(migrate::HintFile::foreign(t.path() / "missing").empty());
  std::ofstream(t.path() / "empty");
  CHECK(migrate::HintFile::foreign(t.path() / "empty").empty());
  TagDigests tags(t.path() / "tags");
  tags.remember("r.io/app:1", d1);
  REQUIRE_FALSE(tags.save());
  CHECK(migrate::HintFile::foreign(t.path() / "tags").empty());
  // A FIFO (or a device) is not replaced by a file, and reading it does not hang.
  const fs::path fifo = t.path() / "fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  migrate::BlobLocations f(fifo);
  CHECK_FALSE(f.find("r.io", d1));
  f.remember("r.io", d1, "org/app");
  auto refused = f.save();
  REQUIRE(refused);
  CHECK(refused->find("not a regular file") != std::string::npos);
  CHECK(fs::is_fifo(fs::symlink_status(fifo)));
}

TEST_CASE("migrate::HintFile leaves the file as it is when the run used nothing from it") {
  TempDir t;
  const fs::path file = t.path() / "f";
  const std::string text = "# image-migrator tag digests v2: reference digest day\nr.io/a:1 " + d1 + " " +
                           std::to_string(today()) + "\n";
  std::ofstream(file) << text;
  const auto before = fs::last_write_time(file);
  TagDigests c(file);
  CHECK_FALSE(c.find("r.io/other:1"));
  REQUIRE_FALSE(c.save());
  CHECK(t.read("f") == text);
  CHECK(fs::last_write_time(file) == before);
  CHECK_FALSE(fs::exists(t.path() / "f.lock")); // not even locked
}

TEST_CASE("migrate::HintFile reads a file a line at a time: across chunks, past an overlong line, without a last newline") {
  TempDir t;
  const fs::path file = t.path() / "f";
  const long day = today();
  {
    std::ofstream out(file);
    out << "# image-migrator tag digests\n";
    for (int i = 0; i < 3000; ++i) // about 290 KB: lines cut by the 64 KiB chunks
      out << "r.io/app:" << i << " " << d1 << " " << day << "\n";
    out << "r.io/long:1 sha256:" << std::string(70000, 'a') << " " << day << "\n"; // longer than any entry
    out << "r.io/after:1 " << d2 << " " << day; // no newline at the end
  }
  TagDigests c(file);
  for (int i : {0, 1, 700, 1499, 2999})
    CHECK_MESSAGE(c.find("r.io/app:" + std::to_string(i)) == d1, i);
  CHECK_FALSE(c.find("r.io/long:1"));
  CHECK(c.find("r.io/after:1") == d2);
  // The same file, saved again, through the chunked writer: every entry read is kept.
  c.remember("r.io/new:1", d2);
  REQUIRE_FALSE(c.save());
  TagDigests again(file);
  CHECK(again.find("r.io/app:2998") == d1);
  CHECK(again.find("r.io/new:1") == d2);
  CHECK(again.find("r.io/after:1") == d2);
}

TEST_CASE("migrate::HintFile refuses image-migrator's other cache: tag digests are not written over blob locations") {
  TempDir t;
  {
    migrate::BlobLocations b(t.path() / "bl");
    b.remember("r.io", d1, "team/a");
    REQUIRE_FALSE(b.save());
    TagDigests c(t.path() / "td");
    c.remember("r.io/app:1", d1);
    REQUIRE_FALSE(c.save());
  }
  const std::string blob_file = t.read("bl"), tag_file = t.read("td");
  auto why = migrate::HintFile::foreign(t.path() / "bl", TagDigests::header);
  CHECK(why.find("blob locations cache, not a tag digests one") != std::string::npos);
  CHECK(migrate::HintFile::foreign(t.path() / "td", migrate::BlobLocations::header).find("tag digests cache, not a blob locations one") !=
        std::string::npos);
  CHECK(migrate::HintFile::foreign(t.path() / "td", TagDigests::header).empty());
  // An older version of the same kind is ours to replace.
  std::ofstream(t.path() / "old") << "# image-migrator tag digests v1: reference digest\n";
  CHECK(migrate::HintFile::foreign(t.path() / "old", TagDigests::header).empty());
  // Saving one cache over the other's file is refused, and the file is left as it was.
  TagDigests wrong(t.path() / "bl");
  wrong.remember("r.io/app:2", d2);
  auto error = wrong.save();
  REQUIRE(error);
  CHECK(error->find("not overwritten") != std::string::npos);
  CHECK(t.read("bl") == blob_file);
}

TEST_CASE("migrate::HintFile keeps digests packed and gives back the very text it was given") {
  TempDir t;
  const fs::path file = t.path() / "f";
  const std::string hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  // Digests inside keys and values, at the ends, twice, next to text that only looks like one.
  const std::vector<std::pair<std::string, std::string>> entries = {
      {"r.io/sha256:" + hex, "org/app"},
      {"r.io/app:1", "sha256:" + hex},
      {"sha256:" + hex + "sha256:" + hex, "sha256:" + hex + "x"},
      {"upper/sha256:" + std::string(64, 'A'), "sha256:" + hex.substr(1)}, // not packed: upper case, 63 digits
      {"long/sha256:" + hex + "f", "sha256:" + std::string(64, 'f')},    // 65 digits: 64 packed, one left
      {"r.io/abc", "a"},                                                  // sorts after "r.io/sha256:..."? no: before
      {"r.io/zzz", "z"},
      {"sha512:" + hex + hex, "v"},
  };
  {
    migrate::HintFile h(file, "# test", nullptr, 100);
    for (const auto& [key, value] : entries)
      h.remember(key, value);
    for (const auto& [key, value] : entries)
      CHECK(h.find(key) == value);
    CHECK_FALSE(h.find("r.io/sha256:" + hex.substr(0, 63) + "0")); // one digit off
    REQUIRE_FALSE(h.save());
  }
  // The file holds the text as given, in key order (as text: "r.io/abc" < "r.io/sha256:..." < "r.io/zzz").
  std::vector<std::string> keys;
  std::istringstream lines(t.read("f"));
  std::string line;
  std::getline(lines, line);
  CHECK(line == "# test");
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string key, value;
    fields >> key >> value;
    keys.push_back(key);
    bool known = false;
    for (const auto& [k, v] : entries)
      known = known || (k == key && v == value);
    CHECK_MESSAGE(known, line);
  }
  CHECK(keys.size() == entries.size());
  CHECK(std::is_sorted(keys.begin(), keys.end()));
  migrate::HintFile again(file, "# test", nullptr, 100);
  for (const auto& [key, value] : entries)
    CHECK(again.find(key) == value);
}

TEST_CASE("migrate::HintFile answers as a plain map would, through saves and merges") {
  // A model: random remembers, forgets and finds against a std::map, saved and read again,
  // compared entry by entry. 4,000 keys: the index merges its recent entries several times, and
  // the text spans several blocks.
  TempDir t;
  const fs::path file = t.path() / "f";
  std::srand(7);
  auto key = [](int i) { return (i % 3 ? "r.io/app:" : "r.io/sha256:" + std::string(60, 'c')) + std::to_string(1000 + i); };
  auto value = [](int i) { return i % 2 ? "sha256:" + std::string(63, 'd') + std::to_string(i % 10) : "v" + std::to_string(i); };
  std::map<std::string, std::string> model;
  migrate::HintFile h(file, "# image-migrator test v1: key value day", nullptr, 100000);
  for (int round = 0; round < 3; ++round) {
    for (int n = 0; n < 12000; ++n) {
      const int i = std::rand() % 4000;
      switch (std::rand() % 3) {
      case 0:
        h.remember(key(i), value(std::rand() % 100));
        model[key(i)] = *h.find(key(i));
        break;
      case 1:
        h.forget(key(i));
        model.erase(key(i));
        break;
      default: {
        auto found = h.find(key(i));
        auto it = model.find(key(i));
        CHECK(found.has_value() == (it != model.end()));
        if (found && it != model.end())
          CHECK(*found == it->second);
      }
      }
    }
    auto error = h.save();
    REQUIRE_MESSAGE(!error, error.value_or(""));
    migrate::HintFile reread(file, "# image-migrator test v1: key value day", nullptr, 100000);
    for (int i = 0; i < 4000; ++i) {
      auto it = model.find(key(i));
      auto found = reread.find(key(i));
      CHECK(found.has_value() == (it != model.end()));
      if (found && it != model.end())
        CHECK(*found == it->second);
    }
  }
}

TEST_CASE("migrate::HintFile refuses what it could never have stored") {
  TempDir t;
  const fs::path file = t.path() / "f";
  const long day = today();
  const std::string a64(64, 'a');
  std::ofstream(file) << "oci:/x/sha256:" << a64 << ":v1 sha256:" << a64 << " " << day << "\n"
                      << "k1 v " << (4294967296L + day) << "\n"   // a day beyond 32 bits: not today
                      << "k2 v " << (2147483648L) << "\n";        // beyond int32: in the future anyway
  migrate::HintFile h(file, "# image-migrator test v1: key value day", nullptr, 100);
  CHECK(h.find("oci:/x/sha256:" + a64 + ":v1") == "sha256:" + a64);
  // A key spelling the packed form (a layout path may hold any byte) is not the digest's.
  CHECK_FALSE(h.find("oci:/x/\x01" + std::string(32, '\xaa') + ":v1"));
  CHECK_FALSE(h.find(std::string("oci:/x/\x01")));                   // the mark at the very end
  h.forget(std::string("oci:/x/\x01"));                                // nothing, no read past it
  CHECK_FALSE(h.find("k1"));
  CHECK_FALSE(h.find("k2"));
}

TEST_CASE("migrate::HintFile keeps one entry's worth for a value that keeps changing") {
  // A shared base layer's place changes with every repository that gets it: 100,000 repositories,
  // names of growing length, hold about one entry, not one copy per repository.
  TempDir t;
  migrate::BlobLocations b(t.path() / "blob-locations");
  const std::string digest = "sha256:" + std::string(64, 'e');
  for (int i = 0; i < 100000; ++i)
    b.remember("r.io", digest, "team/app" + std::to_string(i * 7919 % 100000));
  CHECK(b.find("r.io", digest) == "team/app" + std::to_string(99999 * 7919 % 100000));
  migrate::HintFile h(t.path() / "f", "# image-migrator test v1: key value day", nullptr, 100);
  for (int i = 0; i < 100000; ++i)
    h.remember("key", std::string(1 + i % 200, 'v'));
  CHECK(h.find("key") == std::string(1 + 99999 % 200, 'v'));
  CHECK(h.text_bytes() <= 2 * 65536);
}
