#include "migrate/config.hpp"
#include "migrate/secrets.hpp"
#include "http/base64.hpp"
#include "temp_dir.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <map>

using migrate::SecretKey;

TEST_CASE("migrate::SecretKey AES-256-GCM") {
  auto key = SecretKey::from_bytes(std::string(32, 'k'));
  auto other = SecretKey::from_bytes(std::string(32, 'o'));
  auto c1 = key.encrypt("hunter2");
  auto c2 = key.encrypt("hunter2");
  CHECK(c1.rfind("enc:v1:", 0) == 0);
  CHECK(c1 != c2); // a fresh nonce every time
  CHECK(c1.find("hunter2") == std::string::npos);
  CHECK(key.decrypt(c1).value() == "hunter2");
  CHECK(key.decrypt(key.encrypt("")).value().empty());
  CHECK_FALSE(other.decrypt(c1));
  std::string tampered = c1;
  tampered[10] = tampered[10] == 'A' ? 'B' : 'A';
  CHECK_FALSE(key.decrypt(tampered));
  CHECK_FALSE(key.decrypt("enc:v1:AAAA"));
  CHECK_FALSE(key.decrypt("plain"));
}

TEST_CASE("migrate::encrypt_auth_document") {
  auto key = SecretKey::from_bytes(std::string(32, 'k'));
  auto doc = nlohmann::ordered_json::parse(R"({
    "z.io": {"username": "u", "password": "p1"},
    "a.io": {"username": "u", "password": "$FROM_ENV"},
    "b.io": {"identitytoken": "refresh"},
    "c.io": {"insecure": true},
    "d.io": {"proxy": "http://pu:pp@proxy:3128"},
    "e.io": {"proxy": "http://proxy:3128"},
    "f.io": {"proxy": "http://justauser@proxy:3128"},
    "g.io": {"username": "u", "password": "$$dollar"}
  })");
  CHECK(migrate::encrypt_auth_document(doc, key) == 4);
  CHECK(migrate::is_encrypted(doc["d.io"]["proxy"].get<std::string>())); // a proxy URL with a password
  CHECK(doc["e.io"]["proxy"] == "http://proxy:3128");
  CHECK(doc["f.io"]["proxy"] == "http://justauser@proxy:3128");
  CHECK(doc.begin().key() == "z.io"); // order kept
  CHECK(migrate::is_encrypted(doc["z.io"]["password"].get<std::string>()));
  CHECK(doc["a.io"]["password"] == "$FROM_ENV");
  CHECK(migrate::is_encrypted(doc["b.io"]["identitytoken"].get<std::string>()));
  CHECK(migrate::encrypt_auth_document(doc, key) == 0); // idempotent

  // The loader decrypts with the key and refuses without one.
  auto plain = nlohmann::json::parse(doc.dump());
  auto decrypt = [&](const std::string& v) { return key.decrypt(v); };
  auto env = [](const std::string&) -> std::optional<std::string> { return "from-env"; };
  auto auth = migrate::AuthConfig::from_json(plain, "auth.json", env, decrypt);
  CHECK(auth.find("z.io", "x/y")->credentials.secret() == "p1");
  CHECK(auth.find("b.io", "x/y")->credentials.secret() == "refresh");
  CHECK(auth.find("d.io", "x/y")->proxy == "http://pu:pp@proxy:3128");
  CHECK(auth.find("g.io", "x/y")->credentials.secret() == "$dollar"); // "$$" meant "$", encrypted or not
  CHECK_THROWS_WITH_AS(migrate::AuthConfig::from_json(plain, "auth.json", env), doctest::Contains("no key"),
                       migrate::ConfigError);
  auto wrong = SecretKey::from_bytes(std::string(32, 'w'));
  CHECK_THROWS_WITH_AS(migrate::AuthConfig::from_json(plain, "auth.json", env,
                                                      [&](const std::string& v) { return wrong.decrypt(v); }),
                       doctest::Contains("replace the value with the plaintext password"), migrate::ConfigError);
}

TEST_CASE("migrate::decrypt_auth_document (auth export)") {
  auto key = SecretKey::from_bytes(std::string(32, 'k'));
  nlohmann::ordered_json doc = {
      {"z.io", {{"username", "u"}, {"password", key.encrypt("p1")}}},
      {"a.io", {{"username", "u"}, {"password", "$FROM_ENV"}, {"ca", "/etc/ssl/a.pem"}}},
      {"d.io", {{"username", "u"}, {"password", key.encrypt("$starts-with-dollar")}}},
      {"p.io", {{"proxy", key.encrypt("http://u:pw@proxy:3128")}}}};
  std::vector<std::string> notes;
  auto out = migrate::decrypt_auth_document(doc, "auth.json", key, nullptr, notes);
  CHECK(out["z.io"]["password"] == "p1");
  CHECK(out["d.io"]["password"] == "$$starts-with-dollar"); // still read as the literal it was
  CHECK(out["p.io"]["proxy"] == "http://u:pw@proxy:3128");
  CHECK(out["a.io"]["password"] == "$FROM_ENV");
  CHECK(out.begin().key() == "z.io"); // the user's order kept
  REQUIRE(notes.size() == 2);
  CHECK(notes[0] == "auth.json: key \"a.io\".password refers to $FROM_ENV: the other place must set it (or export with "
                    "--expand-env)");
  CHECK(notes[1].find("\"a.io\".ca is the file /etc/ssl/a.pem") != std::string::npos);
  // What it writes loads as an auth file, each password as meant.
  auto loadable = out;
  loadable["a.io"].erase("ca"); // (the loader reads the file)
  auto config = migrate::AuthConfig::from_json(nlohmann::json::parse(loadable.dump()), "auth.json",
                                               [](const std::string&) { return std::optional<std::string>("env-value"); });
  CHECK(config.find("d.io", "x/y")->credentials.secret() == "$starts-with-dollar");

  SUBCASE("--expand-env") {
    notes.clear();
    migrate::EnvLookup env = [](const std::string& n) {
      return n == "FROM_ENV" ? std::optional<std::string>("from-env") : std::nullopt;
    };
    auto expanded = migrate::decrypt_auth_document(doc, "auth.json", key, &env, notes);
    CHECK(expanded["a.io"]["password"] == "from-env");
    CHECK(notes.size() == 1); // the certificate file only
  }
  SUBCASE("no key: the error names the file, the key and the way out") {
    try {
      migrate::decrypt_auth_document(doc, "auth.json", std::nullopt, nullptr, notes);
      FAIL("no error");
    } catch (const migrate::ConfigError& e) {
      std::string m = e.what();
      CHECK(m.rfind("auth.json: key \"z.io\".password: encrypted by an earlier run", 0) == 0);
      CHECK(m.find("image-migrator auth export --auth FILE") != std::string::npos);
      CHECK(m.find("p1") == std::string::npos);
    }
  }
  SUBCASE("another key") {
    CHECK_THROWS_AS(migrate::decrypt_auth_document(doc, "auth.json", SecretKey::from_bytes(std::string(32, 'o')), nullptr,
                                                   notes),
                    migrate::ConfigError);
  }
}

TEST_CASE("migrate::SecretKey::load: IMAGE_MIGRATOR_KEY, else a private key file under XDG_CONFIG_HOME or HOME") {
  test::TempDir d;
  std::map<std::string, std::string> vars;
  util::EnvLookup env = [&vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
  const std::string secret = SecretKey::from_bytes(std::string(32, 'k')).encrypt("hunter2");

  // From the variable, spaces and the newline of a key file's text trimmed.
  vars = {{"IMAGE_MIGRATOR_KEY", "  " + http::base64_encode(std::string(32, 'k')) + "\n"}};
  auto key = SecretKey::load(false, env);
  REQUIRE(key);
  CHECK(key->origin() == "IMAGE_MIGRATOR_KEY");
  CHECK(key->decrypt(secret).value() == "hunter2");
  vars["IMAGE_MIGRATOR_KEY"] = http::base64_encode(std::string(31, 'k'));
  CHECK_THROWS_AS(SecretKey::load(false, env), migrate::ConfigError);

  // No variable, no home: no key, and none is made up.
  vars.clear();
  CHECK_FALSE(SecretKey::load(true, env));
  vars["HOME"] = (d.path() / "missing").string(); // a HOME that does not exist is no home
  CHECK_FALSE(SecretKey::load(true, env));

  // Created on demand under XDG_CONFIG_HOME with mode 0600, then found again.
  vars = {{"XDG_CONFIG_HOME", (d.path() / "cfg").string()}};
  CHECK_FALSE(SecretKey::load(false, env)); // load without create makes nothing
  CHECK_FALSE(std::filesystem::exists(d.path() / "cfg/image-migrator/key"));
  auto made = SecretKey::load(true, env);
  REQUIRE(made);
  const auto file = d.path() / "cfg/image-migrator/key";
  CHECK(made->origin() == file.string());
  CHECK((std::filesystem::status(file).permissions() & std::filesystem::perms::all) ==
        (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
  auto again = SecretKey::load(false, env);
  REQUIRE(again);
  CHECK(again->decrypt(made->encrypt("x")).value() == "x");

  // A key others could read is refused, loudly.
  std::filesystem::permissions(file, std::filesystem::perms::group_read, std::filesystem::perm_options::add);
  CHECK_THROWS_AS(SecretKey::load(false, env), migrate::ConfigError);
}
