#include "migrate/config.hpp"

#include <doctest/doctest.h>

#include <map>

using migrate::AuthConfig;
using migrate::ConfigError;
using migrate::parse_document;

namespace {
migrate::EnvLookup fake_env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end())
      return std::nullopt;
    return it->second;
  };
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}
} // namespace

TEST_CASE("migrate::parse_document reports file, line and column") {
  SUBCASE("JSON") {
    auto msg = error_of([] { parse_document("{\n  \"a\": \"b\",\n  \"c\" \"d\"\n}", "images.json"); });
    CHECK(msg.rfind("images.json:3:", 0) == 0);
    CHECK(msg.find("invalid JSON") != std::string::npos);
    CHECK(msg.find('\n') == std::string::npos);
  }
  SUBCASE("YAML") {
    auto msg = error_of([] { parse_document("a: b\nc: [d\n", "images.yaml"); });
    CHECK(msg.rfind("images.yaml:", 0) == 0);
    CHECK(msg.find("invalid YAML") != std::string::npos);
  }
  SUBCASE("YAML scalars become typed JSON") {
    auto j = parse_document("reg.io:\n  username: bob\n  password: 123456\n  insecure: true\n  quoted: \"true\"\n", "auth.yaml");
    CHECK(j["reg.io"]["insecure"] == true);
    CHECK(j["reg.io"]["quoted"] == "true");
    CHECK(j["reg.io"]["password"] == 123456);
  }
  SUBCASE("a key twice in one object is an error, not the last one winning") {
    auto msg = error_of([] {
      parse_document("{\"reg.io/a:1\": \"x/a\",\n \"reg.io/b\": \"x/b\",\n \"reg.io/a:1\": \"y/a\"}", "images.json");
    });
    CHECK(msg == "images.json: key \"reg.io/a:1\" appears twice in the same object (the first one would be lost)");
    msg = error_of([] { parse_document("reg.io/a: x/a\nreg.io/b: x/b\nreg.io/a: y/a\n", "images.yaml"); });
    CHECK(msg == "images.yaml:3: key \"reg.io/a\" appears twice in the same map (the first one would be lost)");
    // Nested: the same key in two different objects is fine; twice in a nested one is not.
    CHECK(parse_document(R"({"a": {"u": 1}, "b": {"u": 2}})", "auth.json")["b"]["u"] == 2);
    CHECK(parse_document("a:\n  u: 1\nb:\n  u: 2\n", "auth.yaml")["b"]["u"] == 2);
    msg = error_of([] { parse_document(R"({"reg.io": {"username": "u", "password": "p", "username": "v"}})", "auth.json"); });
    CHECK(msg == "auth.json: key \"username\" appears twice in the same object (the first one would be lost)");
    msg = error_of([] { parse_document("reg.io:\n  username: u\n  username: v\n", "auth.yaml"); });
    CHECK(msg == "auth.yaml:3: key \"username\" appears twice in the same map (the first one would be lost)");
    // Keys of objects inside arrays are counted per object.
    CHECK(parse_document(R"([{"a": 1}, {"a": 2}])", "x.json")[1]["a"] == 2);
  }
  SUBCASE("numbers out of range are an error, not an exception escaping") {
    auto msg = error_of([] { parse_document(R"({"a": 1E999})", "images.json"); });
    CHECK(msg == "images.json: invalid JSON: a number is out of range");
  }
  SUBCASE("deep nesting is refused, not a stack overflow") {
    std::string deep(100000, '[');
    auto msg = error_of([&] { parse_document(deep, "x.json"); });
    CHECK(msg.find("nesting deeper") != std::string::npos);
  }
  SUBCASE("format chosen by content when the name does not tell") {
    CHECK(parse_document("{\"a\": 1}", "conf")["a"] == 1);
    CHECK(parse_document("a: 1", "conf")["a"] == 1);
  }
}

TEST_CASE("migrate::AuthConfig: a key with credentials in it is refused, and they are not repeated") {
  auto env = fake_env({});
  for (const char* key : {"alice:pwsecret@reg.io", "https://alice:pwsecret@reg.io", "alice@reg.io/team", "alice:pw/secret@reg.io"}) {
    CAPTURE(key);
    auto doc = nlohmann::json::parse("{\"" + std::string(key) + "\": {\"insecure\": true}}");
    try {
      AuthConfig::from_json(doc, "auth.json", env);
      FAIL("accepted");
    } catch (const migrate::ConfigError& e) {
      const std::string what = e.what();
      CHECK(what.find("pwsecret") == std::string::npos);
      CHECK(what.find("alice") == std::string::npos);
      CHECK(what.find("auth.json") != std::string::npos);
      CHECK(what.find("credentials go in") != std::string::npos);
    }
  }
}

TEST_CASE("migrate::AuthConfig: Docker Hub under any of its names") {
  auto env = fake_env({});
  for (const char* key : {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}) {
    auto doc = nlohmann::json::parse("{\"" + std::string(key) + "\": {\"username\": \"u\", \"password\": \"p\"}}");
    auto auth = AuthConfig::from_json(doc, "auth.json", env);
    REQUIRE(auth.find("docker.io", "library/nginx") != nullptr);
    CHECK(auth.find("docker.io", "library/nginx")->key == key);
  }
  auto doc = nlohmann::json::parse(R"({"registry.hub.docker.com": {"username": "all"}, "index.docker.io/team": {"username": "team"}})");
  auto auth = AuthConfig::from_json(doc, "auth.json", env);
  CHECK(auth.find("docker.io", "team/app")->credentials.username() == "team"); // the namespace key still wins
  CHECK(auth.find("docker.io", "other/app")->credentials.username() == "all");
  CHECK(auth.find("quay.io", "team/app") == nullptr);
  // A key naming the whole repository matches it (and what is below it), not its neighbours.
  doc = nlohmann::json::parse(R"({"reg.io/team/app": {"username": "repo"}})");
  auth = AuthConfig::from_json(doc, "auth.json", env);
  CHECK(auth.find("reg.io", "team/app")->credentials.username() == "repo");
  CHECK(auth.find("reg.io", "team/app/sub")->credentials.username() == "repo");
  CHECK(auth.find("reg.io", "team/apps") == nullptr);
}

TEST_CASE("migrate::AuthConfig: values that start with $, and YAML numbers") {
  auto env = fake_env({{"REG_PASS", "s3cret"}});
  SUBCASE("an unset variable is named, unless it may be a password that starts with $") {
    auto doc = nlohmann::json::parse(R"({"reg.io": {"username": "u", "password": "$K9QX7TZ2LMV4"}})");
    auto msg = error_of([&] { AuthConfig::from_json(doc, "auth.json", env); });
    CHECK(msg.find("auth.json: key \"reg.io\".password: reads as an environment variable reference") == 0);
    CHECK(msg.find("K9QX7TZ2LMV4") == std::string::npos);
    // A password variable whose name cannot be mistaken for a generated password is named: braced,
    // with an underscore, or without a digit.
    for (auto [value, name] : std::vector<std::pair<std::string, std::string>>{
             {"${K9QX7}", "K9QX7"}, {"$SRC_PASSWORD", "SRC_PASSWORD"}, {"$TOKEN", "TOKEN"}}) {
      doc = {{"reg.io", {{"username", "u"}, {"password", value}}}};
      CAPTURE(value);
      CHECK(error_of([&] { AuthConfig::from_json(doc, "auth.json", env); })
                .find("password: environment variable " + name + " is not set") != std::string::npos);
    }
    // A username is no secret: its variable is named.
    doc = nlohmann::json::parse(R"({"reg.io": {"username": "$REG_USER", "password": "x"}})");
    CHECK(error_of([&] { AuthConfig::from_json(doc, "auth.json", env); }).find("environment variable REG_USER is not set") !=
          std::string::npos);
  }
  SUBCASE("$$ is a literal $") {
    auto doc = nlohmann::json::parse(R"({"reg.io": {"username": "u", "password": "$$K9QX7TZ2LMV4"}})");
    CHECK(AuthConfig::from_json(doc, "auth.json", env).find("reg.io", "a/b")->credentials.secret() == "$K9QX7TZ2LMV4");
  }
  SUBCASE("YAML digits with a leading zero stay text") {
    auto doc = parse_document("reg.io:\n  username: robot\n  password: 007123\n", "auth.yaml");
    CHECK(doc["reg.io"]["password"] == "007123");
    CHECK(AuthConfig::from_json(doc, "auth.yaml", env).find("reg.io", "a/b")->credentials.secret() == "007123");
    CHECK(parse_document("n: 42\nz: 0\nm: -7\n", "x.yaml")["n"] == 42);
    CHECK(parse_document("n: 42\nz: 0\nm: -7\n", "x.yaml")["z"] == 0);
    CHECK(parse_document("n: 42\nz: 0\nm: -7\n", "x.yaml")["m"] == -7);
    // A fraction in YAML (rps) is read as the number it is.
    auto caps = parse_document("reg.io:\n  rps: 1.5\n  maxConcurrency: 2\n", "auth.yaml");
    CHECK(AuthConfig::from_json(caps, "auth.yaml", env).find("reg.io", "a/b")->rps == doctest::Approx(1.5));
    CHECK(error_of([&] { AuthConfig::from_json(parse_document("reg.io:\n  rps: fast\n", "auth.yaml"), "auth.yaml", env); })
              .find("rps: must be a number above 0") != std::string::npos);
  }
}

TEST_CASE("migrate::AuthConfig") {
  auto env = fake_env({{"REG_PASS", "s3cret"}, {"EMPTY", ""}});
  auto doc = nlohmann::json::parse(R"({
    "reg.io": {"username": "u1", "password": "$REG_PASS"},
    "reg.io/team": {"username": "u2", "password": "${REG_PASS}", "insecure": true},
    "reg.io/team/deep": {},
    "other.io:5000": {"username": "u3", "password": "literal$"}
  })");
  auto auth = AuthConfig::from_json(doc, "auth.json", env);

  SUBCASE("longest key wins, namespace form preferred") {
    CHECK(auth.find("reg.io", "app/x")->key == "reg.io");
    CHECK(auth.find("reg.io", "team/x")->key == "reg.io/team");
    CHECK(auth.find("reg.io", "team/deep/x")->key == "reg.io/team/deep");
    CHECK(auth.find("reg.io", "teamx/x")->key == "reg.io"); // a prefix of a path component is no match
    CHECK(auth.find("nowhere.io", "a/b") == nullptr);
    CHECK(auth.find("other.io:5000", "a/b")->credentials.username() == "u3");
  }
  SUBCASE("environment expansion") {
    CHECK(auth.find("reg.io", "app/x")->credentials.secret() == "s3cret");
    CHECK(auth.find("reg.io", "team/x")->credentials.secret() == "s3cret");
    CHECK(auth.find("reg.io", "team/x")->insecure);
    CHECK(auth.find("other.io:5000", "a/b")->credentials.secret() == "literal$");
    CHECK(migrate::env_reference("$ecr3tPass") == std::nullopt); // a password, not a variable
    CHECK(migrate::env_reference("$REG_PASS") == "REG_PASS");
    CHECK(migrate::env_reference("${reg_pass}") == "reg_pass");
    CHECK(migrate::env_reference("${1X}") == std::nullopt);
    CHECK(auth.find("reg.io", "team/deep/x")->credentials.anonymous());
  }
  SUBCASE("errors name the file and key, never the value") {
    auto msg = error_of([&] {
      AuthConfig::from_json(nlohmann::json::parse(R"({"r.io": {"username": "u", "password": "$NOPE_UNSET"}})"), "auth.json", env);
    });
    CHECK(msg == "auth.json: key \"r.io\".password: environment variable NOPE_UNSET is not set (a value that starts "
                 "with $ is written $$)");
    msg = error_of([&] { AuthConfig::from_json(nlohmann::json::parse(R"({"r.io": {"username": 5.5}})"), "a.json", env); });
    CHECK(msg.find("a.json: key \"r.io\".username: must be a string") == 0);
    msg = error_of([&] { AuthConfig::from_json(nlohmann::json::parse(R"({"r.io": {"insecure": "yes"}})"), "a.json", env); });
    CHECK(msg.find("insecure: must be true or false") != std::string::npos);
    msg = error_of([&] { AuthConfig::from_json(nlohmann::json::parse(R"({"r.io": {"pasword": "hunter2"}})"), "a.json", env); });
    CHECK(msg.find("unknown field \"pasword\"") != std::string::npos);
    CHECK(msg.find("hunter2") == std::string::npos);
    msg = error_of([&] { AuthConfig::from_json(nlohmann::json::parse(R"(["r.io"])"), "a.json", env); });
    CHECK(msg.find("a.json: must be an object") == 0);
    msg = error_of([&] { AuthConfig::from_json(nlohmann::json::parse(R"({"https://r.io": {}})"), "a.json", env); });
    CHECK(msg.find("no scheme") != std::string::npos);
  }
  SUBCASE("empty documents mean anonymous everywhere") {
    CHECK(AuthConfig::from_json(nlohmann::json::object(), "a.json", env).entries().empty());
    CHECK(AuthConfig::from_json(nullptr, "a.json", env).entries().empty());
  }
}
