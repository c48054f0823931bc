#include "migrate/docker_config.hpp"

#include "http/base64.hpp"
#include "temp_dir.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

using migrate::ConfigError;
using migrate::docker_credentials;

namespace {

namespace fs = std::filesystem;

/// A test directory that can also hold Docker credential helpers.
class TempDir : public test::TempDir {
public:
  /// Writes an executable `docker-credential-<name>` shell script into bin/.
  void helper(const std::string& name, const std::string& body) const {
    write("bin/docker-credential-" + name, "#!/bin/sh\n" + body,
          fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec | fs::perms::others_read |
              fs::perms::others_exec);
  }
};

migrate::EnvLookup fake_env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end())
      return std::nullopt;
    return it->second;
  };
}

/// DOCKER_CONFIG = dir (with config.json = `config`), PATH = dir/bin before the real PATH.
migrate::EnvLookup env_for(const TempDir& dir, const std::string& config) {
  dir.write("config.json", config);
  const char* path = std::getenv("PATH");
  return fake_env({{"DOCKER_CONFIG", dir.str()}, {"PATH", dir.str() + "/bin:" + (path ? path : "/usr/bin:/bin")}});
}

std::string b64(const std::string& s) { return http::base64_encode(s); }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

/// A helper that logs each run (argument and stdin) to dir/calls and answers `json`.
std::string logging_helper(const TempDir& dir, const std::string& json) {
  return "read -r url\necho \"$1 $url\" >>" + dir.str() + "/calls\ncat <<'EOF'\n" + json + "\nEOF\n";
}

} // namespace

TEST_CASE("migrate::docker_credentials") {
  TempDir dir;

  SUBCASE("auths: base64 auth is user:password (split at the first ':')") {
    auto env = env_for(dir, R"({"auths": {"reg.example.com": {"auth": ")" + b64("alice:pa:ss") + R"("}}})");
    auto c = docker_credentials("reg.example.com", env);
    REQUIRE(c);
    CHECK(c->username() == "alice");
    CHECK(c->secret() == "pa:ss");
    CHECK_FALSE(c->is_identity_token());
    CHECK_FALSE(docker_credentials("other.example.com", env));
  }

  SUBCASE("auths: username and password fields; auth wins over them") {
    auto env = env_for(dir, R"({"auths": {
      "a.example.com": {"username": "bob", "password": "bobpass"},
      "b.example.com": {"username": "bob", "password": "bobpass", "auth": ")" + b64("carol:carolpass") + R"("}}})");
    auto a = docker_credentials("a.example.com", env);
    REQUIRE(a);
    CHECK(a->username() == "bob");
    CHECK(a->secret() == "bobpass");
    auto b = docker_credentials("b.example.com", env);
    REQUIRE(b);
    CHECK(b->username() == "carol");
    CHECK(b->secret() == "carolpass");
  }

  SUBCASE("auths: identitytoken wins over auth") {
    auto env = env_for(dir, R"({"auths": {"reg.example.com": {"auth": ")" + b64("alice:x") +
                                R"(", "identitytoken": "refresh-123"}}})");
    auto c = docker_credentials("reg.example.com", env);
    REQUIRE(c);
    CHECK(c->is_identity_token());
    CHECK(c->secret() == "refresh-123");
  }

  SUBCASE("auths: URL-form keys match on host[:port]") {
    auto env = env_for(dir, R"({"auths": {
      "https://a.example.com": {"username": "u1", "password": "p1"},
      "b.example.com:5000/v2/": {"username": "u2", "password": "p2"},
      "http://C.Example.com/": {"username": "u3", "password": "p3"}}})");
    CHECK(docker_credentials("a.example.com", env)->username() == "u1");
    CHECK(docker_credentials("b.example.com:5000", env)->username() == "u2");
    CHECK_FALSE(docker_credentials("b.example.com", env)); // another port is another registry
    CHECK(docker_credentials("c.example.com", env)->username() == "u3");
    CHECK(docker_credentials("https://a.example.com/v2/", env)->username() == "u1");
    CHECK_FALSE(docker_credentials("a.example.co", env));
  }

  SUBCASE("auths: Docker Hub aliases are one registry") {
    auto env = env_for(dir, R"({"auths": {"https://index.docker.io/v1/": {"auth": ")" + b64("hubuser:hubpass") + R"("}}})");
    for (const char* name : {"docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/"}) {
      CAPTURE(name);
      auto c = docker_credentials(name, env);
      REQUIRE(c);
      CHECK(c->username() == "hubuser");
    }
    CHECK_FALSE(docker_credentials("quay.io", env));
    auto env2 = env_for(dir, R"({"auths": {"docker.io": {"username": "u", "password": "p"}}})");
    CHECK(docker_credentials("registry-1.docker.io", env2)->username() == "u");
  }

  SUBCASE("auths: the exact key wins, then a key with credentials over an empty marker") {
    auto env = env_for(dir, R"({"auths": {
      "https://reg.example.com": {"username": "url", "password": "p"},
      "reg.example.com": {"username": "exact", "password": "p"},
      "https://other.example.com": {},
      "other.example.com/v2/": {"username": "filled", "password": "p"}}})");
    CHECK(docker_credentials("reg.example.com", env)->username() == "exact");
    CHECK(docker_credentials("other.example.com", env)->username() == "filled");
  }

  SUBCASE("nothing configured is nullopt") {
    CHECK_FALSE(docker_credentials("reg.example.com", fake_env({{"DOCKER_CONFIG", dir.str()}}))); // no file
    CHECK_FALSE(docker_credentials("reg.example.com", fake_env({})));                             // no HOME either
    CHECK_FALSE(docker_credentials("reg.example.com", env_for(dir, "")));                          // empty file
    CHECK_FALSE(docker_credentials("reg.example.com", env_for(dir, "{}")));
    CHECK_FALSE(docker_credentials("reg.example.com", env_for(dir, R"({"auths": {"reg.example.com": {}}})")));
    CHECK_FALSE(docker_credentials("reg.example.com", env_for(dir, R"({"auths": {"reg.example.com": {"auth": ""}}})")));
  }

  SUBCASE("without DOCKER_CONFIG: $HOME/.docker/config.json") {
    dir.write(".docker/config.json", R"({"auths": {"reg.example.com": {"username": "h", "password": "p"}}})");
    auto env = fake_env({{"HOME", dir.str()}, {"DOCKER_CONFIG", ""}});
    CHECK(migrate::docker_config_path(env) == dir.str() + "/.docker/config.json");
    CHECK(docker_credentials("reg.example.com", env)->username() == "h");
  }

  SUBCASE("credHelpers: the helper gets the server URL on stdin, runs once per registry") {
    dir.helper("test", logging_helper(dir, R"({"ServerURL": "x", "Username": "helperuser", "Secret": "helper-s3cret"})"));
    auto env = env_for(dir, R"({"credHelpers": {"reg.example.com": "test", "https://index.docker.io/v1/": "test"},
      "auths": {"reg.example.com": {"username": "fileuser", "password": "p"},
                "plain.example.com": {"username": "plainuser", "password": "p"}}})");
    for (int i = 0; i < 3; ++i) {
      auto c = docker_credentials("reg.example.com", env);
      REQUIRE(c);
      CHECK(c->username() == "helperuser"); // the helper wins over auths
      CHECK(c->secret() == "helper-s3cret");
    }
    CHECK(docker_credentials("docker.io", env)->username() == "helperuser");
    CHECK(docker_credentials("registry-1.docker.io", env)->username() == "helperuser");
    CHECK(docker_credentials("plain.example.com", env)->username() == "plainuser");
    CHECK(dir.read("calls") == "get reg.example.com\nget https://index.docker.io/v1/\n");
  }

  SUBCASE("credHelpers: concurrent callers share one run") {
    dir.helper("slow", "sleep 0.3\n" + logging_helper(dir, R"({"Username": "u", "Secret": "s"})"));
    auto env = env_for(dir, R"({"credHelpers": {"reg.example.com": "slow"}})");
    std::vector<std::thread> threads;
    std::atomic<int> ok{0};
    for (int i = 0; i < 4; ++i)
      threads.emplace_back([&] {
        if (auto c = docker_credentials("reg.example.com", env); c && c->username() == "u")
          ++ok;
      });
    for (auto& t : threads)
      t.join();
    CHECK(ok == 4);
    CHECK(dir.read("calls") == "get reg.example.com\n");
  }

  SUBCASE("credHelpers: Username <token> means an identity token") {
    dir.helper("tok", R"(cat >/dev/null; echo '{"ServerURL": "reg.example.com", "Username": "<token>", "Secret": "refresh-xyz"}')");
    auto c = docker_credentials("reg.example.com", env_for(dir, R"({"credHelpers": {"reg.example.com": "tok"}})"));
    REQUIRE(c);
    CHECK(c->is_identity_token());
    CHECK(c->secret() == "refresh-xyz");
  }

  SUBCASE("credsStore: used for every registry; when it knows nothing, auths; credHelpers first") {
    dir.helper("store", R"(read -r url
echo "$url" >>)" + dir.str() + R"(/calls
case "$url" in
  known.example.com) echo '{"Username": "storeuser", "Secret": "store-pw"}' ;;
  *) echo 'credentials not found in native keychain'; exit 1 ;;
esac
)");
    dir.helper("other", R"(cat >/dev/null; echo '{"Username": "otheruser", "Secret": "x"}')");
    auto env = env_for(dir, R"({"credsStore": "store", "credHelpers": {"helped.example.com": "other"},
      "auths": {"known.example.com": {}, "inline.example.com": {"username": "inlineuser", "password": "p"}}})");
    CHECK(docker_credentials("known.example.com", env)->username() == "storeuser");
    CHECK(docker_credentials("inline.example.com", env)->username() == "inlineuser");
    CHECK_FALSE(docker_credentials("unknown.example.com", env));
    CHECK(docker_credentials("helped.example.com", env)->username() == "otheruser");
    CHECK(dir.read("calls") == "known.example.com\ninline.example.com\nunknown.example.com\n");
  }

  SUBCASE("a helper saying 'credentials not found' is nullopt, also for credHelpers") {
    dir.helper("nf", "cat >/dev/null\necho 'credentials not found in native keychain'\nexit 1\n");
    dir.helper("nf2", "cat >/dev/null\necho 'error: credentials not found' >&2\nexit 1\n");
    dir.helper("empty", "cat >/dev/null\necho '{\"ServerURL\": \"\", \"Username\": \"\", \"Secret\": \"\"}'\n");
    auto env = env_for(dir, R"({"credHelpers": {"a.example.com": "nf", "b.example.com": "nf2", "c.example.com": "empty"},
      "auths": {"a.example.com": {"username": "fileuser", "password": "p"}}})");
    CHECK_FALSE(docker_credentials("a.example.com", env)); // the helper has the final word
    CHECK_FALSE(docker_credentials("b.example.com", env));
    CHECK_FALSE(docker_credentials("c.example.com", env));
  }

  SUBCASE("a helper printing garbage is a ConfigError naming file and helper, not the output") {
    dir.helper("garbage", "cat >/dev/null\necho 'Username=alice Secret=garbage-s3cret'\n");
    auto env = env_for(dir, R"({"credHelpers": {"reg.example.com": "garbage"}})");
    auto msg = error_of([&] { docker_credentials("reg.example.com", env); });
    CHECK(contains(msg, dir.str() + "/config.json: credHelpers.\"reg.example.com\": docker-credential-garbage"));
    CHECK(contains(msg, "expected JSON"));
    CHECK_FALSE(contains(msg, "garbage-s3cret"));
    CHECK(msg.find('\n') == std::string::npos);
  }

  SUBCASE("a failing helper: exit code and its first line of stderr; JSON output never shown") {
    dir.helper("fails", "cat >/dev/null\necho 'pass not initialized: run pass init' >&2\necho second line >&2\nexit 3\n");
    dir.helper("jsonfail", "cat >/dev/null\necho '{\"Username\": \"u\", \"Secret\": \"json-s3cret\"}'\nexit 1\n");
    auto env = env_for(dir, R"({"credHelpers": {"a.example.com": "fails", "b.example.com": "jsonfail"}})");
    auto msg = error_of([&] { docker_credentials("a.example.com", env); });
    CHECK(contains(msg, "docker-credential-fails get a.example.com: exit code 3: pass not initialized: run pass init"));
    CHECK_FALSE(contains(msg, "second line"));
    msg = error_of([&] { docker_credentials("b.example.com", env); });
    CHECK(contains(msg, "docker-credential-jsonfail get b.example.com: exit code 1"));
    CHECK_FALSE(contains(msg, "json-s3cret"));
  }

  SUBCASE("a helper missing from PATH, or a bad helper name, is a ConfigError") {
    auto env = env_for(dir, R"({"credsStore": "desktop"})");
    auto msg = error_of([&] { docker_credentials("reg.example.com", env); });
    CHECK(msg == dir.str() + "/config.json: credsStore: docker-credential-desktop: not found in PATH");
    msg = error_of([&] { docker_credentials("reg.example.com", env_for(dir, R"({"credHelpers": {"reg.example.com": "../x"}})")); });
    CHECK(contains(msg, "credHelpers.\"reg.example.com\": invalid helper name"));
    msg = error_of([&] { docker_credentials("reg.example.com", env_for(dir, R"({"credHelpers": {"reg.example.com": 5}})")); });
    CHECK(contains(msg, "credHelpers.\"reg.example.com\": must be a string"));
  }

  SUBCASE("a hanging helper is killed after the time limit; more than 1 MiB of output is refused") {
    dir.helper("hang", "exec sleep 30\n");
    dir.helper("flood", "cat >/dev/null\nexec head -c 3000000 /dev/zero\n");
    auto env = env_for(dir, "{}");
    auto t0 = std::chrono::steady_clock::now();
    auto msg = error_of([&] { migrate::credential_helper_get("hang", "reg.example.com", env, std::chrono::milliseconds(300)); });
    CHECK(contains(msg, "docker-credential-hang: did not answer within 300 ms"));
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
    msg = error_of([&] { migrate::credential_helper_get("flood", "reg.example.com", env); });
    CHECK(msg == "docker-credential-flood: wrote more than 1 MiB");
  }

  SUBCASE("a helper that exits without reading stdin is not a crash (no SIGPIPE)") {
    dir.helper("noread", "echo '{\"Username\": \"u\", \"Secret\": \"s\"}'\n");
    auto c = migrate::credential_helper_get("noread", std::string(2000000, 'x'), env_for(dir, "{}"));
    REQUIRE(c);
    CHECK(c->username() == "u");
  }

  SUBCASE("malformed config.json: file, line and column, never the text") {
    auto env = env_for(dir, "{\n  \"auths\": {\n    \"reg.example.com\": {\"auth\": \"c2VjcmV0\" \"x\"}\n}\n");
    auto msg = error_of([&] { docker_credentials("reg.example.com", env); });
    CHECK(msg.rfind(dir.str() + "/config.json:3:", 0) == 0);
    CHECK(contains(msg, "invalid JSON"));
    CHECK_FALSE(contains(msg, "c2VjcmV0"));
  }

  SUBCASE("broken entries: ConfigError naming file and key, never the value") {
    auto msg = error_of([&] {
      docker_credentials("reg.example.com", env_for(dir, R"({"auths": {"reg.example.com": {"auth": "!!not-base64-s3cret"}}})"));
    });
    CHECK(msg == dir.str() + "/config.json: auths.\"reg.example.com\".auth: not valid base64");
    msg = error_of([&] {
      docker_credentials("reg.example.com", env_for(dir, R"({"auths": {"reg.example.com": {"auth": ")" + b64("nocolon") + R"("}}})"));
    });
    CHECK(contains(msg, "auths.\"reg.example.com\".auth: must be base64 of \"username:password\""));
    CHECK_FALSE(contains(msg, "nocolon"));
    msg = error_of([&] { docker_credentials("reg.example.com", env_for(dir, R"({"auths": []})")); });
    CHECK(msg == dir.str() + "/config.json: auths: must be an object, not array");
    msg = error_of([&] {
      docker_credentials("reg.example.com", env_for(dir, R"({"auths": {"reg.example.com": {"password": 12}}})"));
    });
    CHECK(msg == dir.str() + "/config.json: auths.\"reg.example.com\".password: must be a string, not number");
    // A broken entry of another registry does not matter.
    CHECK_FALSE(docker_credentials("reg.example.com", env_for(dir, R"({"auths": {"other.io": {"auth": "!!"}}})")));
  }
}
