#include "migrate/docker_config.hpp"

#include "http/base64.hpp"
#include "http/process.hpp"
#include "http/url.hpp"
#include "util/env.hpp"
#include "util/json.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace migrate {

namespace {

using nlohmann::json;

constexpr std::size_t max_helper_output = 1u << 20;
constexpr const char* docker_hub = "docker.io";
constexpr const char* docker_hub_server_url = "https://index.docker.io/v1/";
constexpr const char* default_path = "/usr/local/bin:/usr/bin:/bin";


/// host[:port] of a config key or registry name: scheme and path dropped, lower-cased, Docker Hub's
/// aliases folded into "docker.io" (Docker's ConvertToHostname, plus the aliases).
std::string normalize_host(const std::string& name) {
  std::string s = http::to_lower(name);
  for (std::string_view scheme : {"https://", "http://"})
    if (s.rfind(scheme, 0) == 0) {
      s.erase(0, scheme.size());
      break;
    }
  s = s.substr(0, s.find('/'));
  if (s == "docker.io" || s == "index.docker.io" || s == "registry-1.docker.io")
    return docker_hub;
  return s;
}

/// What Docker sends to a helper: the host, or Docker Hub's historical URL.
std::string server_url_of(const std::string& host) { return host == docker_hub ? docker_hub_server_url : host; }

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

/// A helper's error message fit for one log line: first line, printable, short; "" if it looks like
/// JSON (a helper that fails after printing its answer must not have the secret shown).
std::string safe_message(const std::string& out, const std::string& err) {
  const std::string& src = err.find_first_not_of(" \t\r\n") != std::string::npos ? err : out;
  auto b = src.find_first_not_of(" \t\r\n");
  if (b == std::string::npos || src[b] == '{' || src[b] == '[')
    return "";
  std::string line = src.substr(b, src.find_first_of("\r\n", b) - b);
  for (auto& c : line)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      c = ' ';
  if (line.size() > 200)
    line = line.substr(0, 200) + "...";
  return line;
}

bool says_not_found(const std::string& out, const std::string& err) {
  return http::to_lower(out).find("credentials not found") != std::string::npos ||
         http::to_lower(err).find("credentials not found") != std::string::npos;
}

/// The helper's full path: `program` searched in the absolute directories of `path` (Go's exec
/// refuses relative PATH entries too); "" if not found.
std::string find_in_path(const std::string& program, const std::string& path) {
  std::stringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty() || dir[0] != '/')
      continue;
    std::string candidate = dir + "/" + program;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  return "";
}

/// Helper answers for this process, keyed by helper path and server URL. Each key has its own mutex
/// so that concurrent callers wait for one run of the helper, while other helpers run in parallel.
class HelperCache {
public:
  std::optional<registry::Credentials> get(const std::string& key,
                                           const std::function<std::optional<registry::Credentials>()>& run) {
    std::shared_ptr<Slot> slot;
    {
      std::lock_guard lock(m_mutex);
      auto& s = m_slots[key];
      if (!s)
        s = std::make_shared<Slot>();
      slot = s;
    }
    std::lock_guard lock(slot->mutex);
    if (!slot->done) {
      slot->value = run(); // an exception leaves the slot empty: the run ends with it anyway
      slot->done = true;
    }
    return slot->value;
  }

private:
  struct Slot {
    std::mutex mutex;
    bool done = false;
    std::optional<registry::Credentials> value;
  };
  std::mutex m_mutex;
  std::map<std::string, std::shared_ptr<Slot>> m_slots;
};

HelperCache& helper_cache() {
  static HelperCache cache;
  return cache;
}

std::string env_path(const EnvLookup& env) {
  auto path = util::env_value(env, "PATH");
  return path ? *path : default_path;
}

/// credential_helper_get through the cache; errors prefixed with `where`.
std::optional<registry::Credentials> cached_helper_get(const std::string& helper, const std::string& server_url,
                                                       const EnvLookup& env, const std::string& where) {
  try {
    if (helper.empty() || helper.find('/') != std::string::npos)
      throw ConfigError("invalid helper name " + quoted(helper) + " (expected e.g. \"ecr-login\")");
    std::string program = find_in_path("docker-credential-" + helper, env_path(env));
    return helper_cache().get(program.empty() ? "?" + helper + "\n" + server_url : program + "\n" + server_url,
                              [&] { return credential_helper_get(helper, server_url, env); });
  } catch (const ConfigError& e) {
    throw ConfigError(where + ": " + e.what());
  }
}

/// A string field of an auths entry ("" when absent or null).
std::string string_field(const json& entry, const char* field, const std::string& where) {
  auto it = entry.find(field);
  if (it == entry.end() || it->is_null())
    return "";
  if (!it->is_string())
    throw ConfigError(where + "." + field + ": must be a string, not " + it->type_name());
  return it->get<std::string>();
}

/// Credentials of one auths entry; nullopt for an entry without any (Docker writes `{}` entries as
/// markers when a credsStore holds the secret).
std::optional<registry::Credentials> entry_credentials(const json& entry, const std::string& where) {
  if (entry.is_null())
    return std::nullopt;
  if (!entry.is_object())
    throw ConfigError(where + ": must be an object, not " + std::string(entry.type_name()));
  std::string identity = string_field(entry, "identitytoken", where);
  std::string auth = string_field(entry, "auth", where);
  std::string username = string_field(entry, "username", where);
  std::string password = string_field(entry, "password", where);
  if (!identity.empty())
    return registry::Credentials::identity_token(identity);
  if (!auth.empty()) {
    auto decoded = http::base64_decode(auth);
    if (!decoded)
      throw ConfigError(where + ".auth: not valid base64");
    auto colon = decoded->find(':');
    if (colon == std::string::npos)
      throw ConfigError(where + ".auth: must be base64 of \"username:password\" (no ':' found)");
    std::string user = decoded->substr(0, colon);
    std::string pass = decoded->substr(colon + 1);
    // Docker trims NUL padding some tools leave in the password.
    while (!pass.empty() && pass.back() == '\0')
      pass.pop_back();
    if (user.empty())
      throw ConfigError(where + ".auth: the username is empty");
    return registry::Credentials(user, pass);
  }
  if (username.empty() && password.empty())
    return std::nullopt;
  if (username.empty())
    throw ConfigError(where + ": password given without username");
  return registry::Credentials(username, password);
}

/// The item of `object` for `host`: an `exact` key first, then the first key that normalises to
/// `host` (keys are sorted). nullptr when none.
const json::object_t::value_type* find_key(const json& object, const std::string& host,
                                           const std::vector<std::string>& exact) {
  const auto& items = object.get_ref<const json::object_t&>();
  for (const auto& e : exact)
    if (auto it = items.find(e); it != items.end())
      return &*it;
  for (const auto& item : items)
    if (normalize_host(item.first) == host)
      return &item;
  return nullptr;
}


} // namespace

std::string docker_config_path(const EnvLookup& env) {
  if (auto dir = util::env_value(env, "DOCKER_CONFIG"); dir && !dir->empty())
    return (std::filesystem::path(*dir) / "config.json").string();
  if (auto home = util::env_value(env, "HOME"); home && !home->empty())
    return (std::filesystem::path(*home) / ".docker" / "config.json").string();
  return "";
}

std::optional<registry::Credentials> credential_helper_get(const std::string& helper, const std::string& server_url,
                                                           const EnvLookup& env, std::chrono::milliseconds limit) {
  const std::string name = "docker-credential-" + helper;
  if (helper.empty() || helper.find('/') != std::string::npos)
    throw ConfigError(name + ": invalid helper name");
  std::string path = env_path(env);
  std::string program = find_in_path(name, path);
  if (program.empty())
    throw ConfigError(name + ": not found in PATH");
  auto run = http::run_process(program, name, {"get"}, util::child_environment({{"PATH", path}}), server_url, limit, max_helper_output);
  if (!run)
    throw ConfigError(name + ": " + run.error().message);
  const http::ProcessOutput& r = *run;
  if (r.status != 0) {
    if (says_not_found(r.out, r.err))
      return std::nullopt;
    std::string message = safe_message(r.out, r.err);
    throw ConfigError(name + " get " + server_url + ": exit code " + std::to_string(r.status) +
                      (message.empty() ? "" : ": " + message));
  }
  // Never quote the output here: it is where the secret would be.
  const std::string bad = name + " get " + server_url + ": answered something other than the expected JSON " +
                          "{\"ServerURL\", \"Username\", \"Secret\"}";
  json answer;
  try {
    answer = util::parse_json(r.out);
  } catch (const json::exception&) {
    throw ConfigError(bad);
  }
  if (!answer.is_object())
    throw ConfigError(bad);
  auto field = [&](const char* key) -> std::string {
    auto it = answer.find(key);
    if (it == answer.end() || it->is_null())
      return "";
    if (!it->is_string())
      throw ConfigError(bad + " (" + key + " is not a string)");
    return it->get<std::string>();
  };
  std::string username = field("Username");
  std::string secret = field("Secret");
  if (username.empty() && secret.empty())
    return std::nullopt;
  if (username == "<token>")
    return registry::Credentials::identity_token(secret);
  if (username.empty())
    throw ConfigError(name + " get " + server_url + ": answered a Secret without a Username");
  return registry::Credentials(username, secret);
}

std::optional<registry::Credentials> docker_credentials(const std::string& registry, const EnvLookup& env) {
  const std::string file = docker_config_path(env);
  if (file.empty())
    return std::nullopt;
  std::error_code ec;
  auto status = std::filesystem::status(file, ec);
  if (status.type() == std::filesystem::file_type::not_found)
    return std::nullopt;
  if (status.type() == std::filesystem::file_type::directory)
    throw ConfigError(file + ": is a directory, not a file");
  std::string text = read_text_file(file);
  if (text.find_first_not_of(" \t\r\n") == std::string::npos)
    return std::nullopt; // Docker accepts an empty config.json
  json doc = parse_document(text, file); // errors carry file:line:column and never the text read
  if (!doc.is_object())
    throw ConfigError(file + ": must be a JSON object, not " + std::string(doc.type_name()));

  const std::string host = normalize_host(registry);
  if (host.empty())
    return std::nullopt;
  const std::string server_url = server_url_of(host);
  const std::vector<std::string> exact_keys = {registry, server_url};

  auto object_field = [&](const char* key) -> const json* {
    auto it = doc.find(key);
    if (it == doc.end() || it->is_null())
      return nullptr;
    if (!it->is_object())
      throw ConfigError(file + ": " + key + ": must be an object, not " + std::string(it->type_name()));
    return &*it;
  };

  // 1. credHelpers: the helper named for this registry has the final word.
  if (const json* helpers = object_field("credHelpers")) {
    if (const auto* item = find_key(*helpers, host, exact_keys)) {
      std::string where = file + ": credHelpers." + quoted(item->first);
      if (!item->second.is_string())
        throw ConfigError(where + ": must be a string (a helper name), not " + std::string(item->second.type_name()));
      return cached_helper_get(item->second.get<std::string>(), server_url, env, where);
    }
  }

  // 2. credsStore: the default helper for every registry.
  if (auto it = doc.find("credsStore"); it != doc.end() && !it->is_null()) {
    std::string where = file + ": credsStore";
    if (!it->is_string())
      throw ConfigError(where + ": must be a string (a helper name), not " + std::string(it->type_name()));
    if (!it->get<std::string>().empty())
      if (auto credentials = cached_helper_get(it->get<std::string>(), server_url, env, where))
        return credentials;
  }

  // 3. auths: the exact key, else any key for the same host that carries credentials.
  const json* auths = object_field("auths");
  if (!auths)
    return std::nullopt;
  const auto& entries = auths->get_ref<const json::object_t&>();
  for (const auto& key : exact_keys)
    if (auto it = entries.find(key); it != entries.end())
      if (auto credentials = entry_credentials(it->second, file + ": auths." + quoted(key)))
        return credentials;
  for (const auto& [key, entry] : entries)
    if (normalize_host(key) == host)
      if (auto credentials = entry_credentials(entry, file + ": auths." + quoted(key)))
        return credentials;
  return std::nullopt;
}

} // namespace migrate
