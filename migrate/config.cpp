#include "migrate/config.hpp"

#include "http/url.hpp"
#include "registry/reference.hpp"
#include "util/file.hpp"
#include "util/json.hpp"
#include "util/process.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <sys/stat.h>
#include <unistd.h>

namespace migrate {

namespace {

using nlohmann::json;

constexpr std::size_t max_document_size = 64u << 20;
constexpr int max_depth = 256;

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// Line and column (1-based) of a byte offset.
std::pair<std::size_t, std::size_t> line_col(std::string_view text, std::size_t offset) {
  std::size_t line = 1, col = 1;
  for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return {line, col};
}

/// Rejects absurd nesting before a recursive parser sees it.
void check_depth(std::string_view text, const std::string& name) {
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"')
      in_string = true;
    else if (c == '{' || c == '[')
      ++depth;
    else if (c == '}' || c == ']')
      --depth;
    if (depth > max_depth) {
      auto [line, col] = line_col(text, i);
      throw ConfigError(name + ":" + std::to_string(line) + ":" + std::to_string(col) + ": nesting deeper than " +
                        std::to_string(max_depth) + " levels");
    }
  }
}

json yaml_to_json(const YAML::Node& node, int depth, const std::string& name) {
  if (depth > max_depth)
    throw ConfigError(name + ": nesting deeper than " + std::to_string(max_depth) + " levels");
  switch (node.Type()) {
  case YAML::NodeType::Null:
  case YAML::NodeType::Undefined:
    return nullptr;
  case YAML::NodeType::Scalar: {
    const std::string& s = node.Scalar();
    if (node.Tag() == "!")
      return s; // quoted: always a string
    if (s == "true" || s == "True" || s == "TRUE")
      return true;
    if (s == "false" || s == "False" || s == "FALSE")
      return false;
    if (s == "~" || s == "null" || s == "Null" || s == "NULL")
      return nullptr;
    // A number only when it reads back the same: "007123" (a password, a tag) stays text.
    if (!s.empty() && s.size() < 19 && s.find_first_not_of("-0123456789") == std::string::npos &&
        s.find('-', 1) == std::string::npos && s != "-" && std::to_string(std::stoll(s)) == s)
      return std::stoll(s);
    return s;
  }
  case YAML::NodeType::Sequence: {
    json arr = json::array();
    for (const auto& item : node)
      arr.push_back(yaml_to_json(item, depth + 1, name));
    return arr;
  }
  case YAML::NodeType::Map: {
    json obj = json::object();
    for (const auto& kv : node) {
      if (!kv.first.IsScalar())
        throw ConfigError(name + ":" + std::to_string(kv.first.Mark().line + 1) + ": map keys must be strings");
      if (obj.contains(kv.first.Scalar()))
        throw ConfigError(name + ":" + std::to_string(kv.first.Mark().line + 1) + ": key \"" + kv.first.Scalar() +
                          "\" appears twice in the same map (the first one would be lost)");
      obj[kv.first.Scalar()] = yaml_to_json(kv.second, depth + 1, name);
    }
    return obj;
  }
  }
  return nullptr;
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

std::string type_name(const json& j) { return j.type_name(); }

} // namespace

void check_writable(const std::string& path) {
  if (auto why = util::unwritable(path); !why.empty())
    throw ConfigError(why);
}

void write_file_atomically(const std::string& path, const std::string& content, unsigned mode) {
  if (auto why = util::write_file_atomically(path, content, static_cast<mode_t>(mode)); !why.empty())
    throw ConfigError(why);
}

json parse_document(std::string_view text, const std::string& name) {
  if (text.size() > max_document_size)
    throw ConfigError(name + ": file larger than " + std::to_string(max_document_size >> 20) + " MiB");
  bool yaml = ends_with(name, ".yaml") || ends_with(name, ".yml");
  if (!yaml && !ends_with(name, ".json")) {
    auto first = text.find_first_not_of(" \t\r\n");
    yaml = first != std::string_view::npos && text[first] != '{' && text[first] != '[';
  }
  check_depth(text, name);
  if (!yaml) {
    // nlohmann keeps the last of two equal keys in an object; here that is an error (a rule or a
    // registry lost without a word). One set of keys per open object.
    std::vector<std::set<std::string>> keys;
    std::string twice;
    auto no_duplicates = [&](int, json::parse_event_t event, json& parsed) {
      if (event == json::parse_event_t::object_start)
        keys.emplace_back();
      else if (event == json::parse_event_t::object_end && !keys.empty())
        keys.pop_back();
      else if (event == json::parse_event_t::key && !keys.empty() && !keys.back().insert(parsed.get<std::string>()).second &&
               twice.empty())
        twice = parsed.get<std::string>();
      return true;
    };
    try {
      json doc = util::parse_json(text, max_depth, std::function<bool(int, json::parse_event_t, json&)>(no_duplicates));
      if (!twice.empty())
        throw ConfigError(name + ": key \"" + twice + "\" appears twice in the same object (the first one would be lost)");
      return doc;
    } catch (const json::parse_error& e) {
      auto [line, col] = line_col(text, e.byte == 0 ? 0 : e.byte - 1);
      std::string what = e.what();
      // nlohmann's text: "[json.exception.parse_error.101] parse error at line 1, column 5: syntax error ... - <detail>"
      auto dash = what.rfind(" - ");
      std::string detail = dash == std::string::npos ? what : what.substr(dash + 3);
      // nlohmann quotes the text it read ("last read: '...'"): that may be a password.
      if (auto lr = detail.find("; last read:"); lr != std::string::npos)
        detail.erase(lr);
      throw ConfigError(name + ":" + std::to_string(line) + ":" + std::to_string(col) + ": invalid JSON: " +
                        first_line(detail));
    } catch (const json::exception&) {
      // e.g. out_of_range for a number like 1E999: nlohmann reports no position for those.
      throw ConfigError(name + ": invalid JSON: a number is out of range");
    }
  }
  try {
    YAML::Node node = YAML::Load(std::string(text));
    return yaml_to_json(node, 0, name);
  } catch (const YAML::Exception& e) {
    throw ConfigError(name + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
                      ": invalid YAML: " + first_line(e.msg));
  }
}

std::string read_text_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw ConfigError(path + ": is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw ConfigError(path + ": cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad())
    throw ConfigError(path + ": cannot read file");
  return ss.str();
}

json load_document(const std::string& path) { return parse_document(read_text_file(path), path); }

std::optional<std::string> env_reference(const std::string& value) {
  auto identifier = [](const std::string& n, bool upper_only) {
    if (n.empty() || std::isdigit(static_cast<unsigned char>(n[0])))
      return false;
    return std::all_of(n.begin(), n.end(), [&](char c) {
      return c == '_' || std::isdigit(static_cast<unsigned char>(c)) || std::isupper(static_cast<unsigned char>(c)) ||
             (!upper_only && std::islower(static_cast<unsigned char>(c)));
    });
  };
  if (value.size() > 3 && value.rfind("${", 0) == 0 && value.back() == '}') {
    std::string name = value.substr(2, value.size() - 3);
    if (identifier(name, false))
      return name;
  } else if (value.size() > 1 && value[0] == '$' && identifier(value.substr(1), true)) {
    // $NAME only in the usual upper-case form: "$ecr3t" is a password, not a variable.
    return value.substr(1);
  }
  return std::nullopt;
}

std::string literal_value(const std::string& value) { return value.rfind("$$", 0) == 0 ? value.substr(1) : value; }

std::string escaped_literal(const std::string& value) { return value.starts_with('$') ? "$" + value : value; }

std::string expand_env(const std::string& value, const std::string& where, const EnvLookup& env, bool secret) {
  auto name = env_reference(value);
  if (!name)
    return literal_value(value);
  auto v = util::env_value(env, *name);
  if (v) {
    if (secret) // a password in the environment is ours to use, not every child process's to read
      util::mark_secret_environment_variable(*name);
    return *v;
  }
  // A password that merely starts with '$' must not be printed as "the variable's name"; but the
  // user needs the name to export it. In a secret field the name is given when it does not look like
  // a generated password: written ${NAME}, or with an underscore, or without a digit ($SRC_PASSWORD,
  // $TOKEN); "$K9QX7TZ2LMV4" is not named.
  const bool nameable = !secret || value.rfind("${", 0) == 0 || name->find('_') != std::string::npos ||
                        name->find_first_of("0123456789") == std::string::npos;
  if (!nameable)
    throw ConfigError(where + ": reads as an environment variable reference, but that variable is not set (a value "
                              "that starts with $ is written $$)");
  throw ConfigError(where + ": environment variable " + *name + " is not set (a value that starts with $ is written $$)");
}

AuthConfig AuthConfig::from_json(const json& doc, const std::string& file, const EnvLookup& env, const Decryptor& decrypt) {
  AuthConfig config;
  if (doc.is_null())
    return config;
  if (!doc.is_object())
    throw ConfigError(file + ": must be an object mapping registry[/namespace] to credentials, not " + type_name(doc));
  for (const auto& item : doc.items()) {
    const std::string key = item.key();
    const json& value = item.value(); // not a structured binding: lambdas below capture it
    const auto at = key.rfind('@'); // no key has one: what comes before it may be a secret
    std::string where = file + ": key \"" + (at == std::string::npos ? key : "<redacted>" + key.substr(at)) + "\"";
    if (at != std::string::npos)
      throw ConfigError(where + ": key must be \"registry\" or \"registry/namespace\": credentials go in its "
                                "\"username\" and \"password\" fields");
    if (key.empty() || key.find("://") != std::string::npos || key.back() == '/')
      throw ConfigError(where + ": key must be \"registry\" or \"registry/namespace\" (no scheme, no trailing /)");
    AuthEntry e;
    e.key = key;
    if (value.is_null()) {
      config.m_entries.push_back(std::move(e));
      continue;
    }
    if (!value.is_object())
      throw ConfigError(where + ": must be an object, not " + type_name(value));
    auto get_string = [&](const char* field) -> std::string {
      if (!value.contains(field) || value[field].is_null())
        return {};
      const auto& v = value[field];
      std::string s;
      if (v.is_string())
        s = v.get<std::string>();
      else if (v.is_number_integer())
        s = std::to_string(v.get<long long>());
      else
        throw ConfigError(where + "." + field + ": must be a string, not " + type_name(v));
      if (s.rfind("enc:v1:", 0) == 0) {
        if (!decrypt)
          throw ConfigError(where + "." + field + ": encrypted, but no key is available (IMAGE_MIGRATOR_KEY or the key file)");
        auto plain = decrypt(s);
        if (!plain)
          throw ConfigError(where + "." + field + ": " + plain.error().message);
        return *plain;
      }
      const std::string f = field;
      return expand_env(s, where + "." + field, env, f == "password" || f == "identitytoken" || f == "proxy");
    };
    auto get_bool = [&](const char* field) -> bool {
      if (!value.contains(field) || value[field].is_null())
        return false;
      const auto& v = value[field];
      if (v.is_boolean())
        return v.get<bool>();
      if (v.is_string() && (v == "true" || v == "false"))
        return v == "true";
      throw ConfigError(where + "." + field + ": must be true or false, not " + type_name(v));
    };
    static const std::vector<std::string> known = {"username", "password", "insecure", "ca", "cert", "key",
                                                   "skipTLSVerify", "identitytoken", "chunked", "proxy", "address",
                                                   "maxConcurrency", "rps", "adaptive"};
    for (const auto& [field, _] : value.items())
      if (std::find(known.begin(), known.end(), field) == known.end())
        throw ConfigError(where + ": unknown field \"" + field + "\" (known: username, password, insecure, ca, cert, key, "
                                                               "skipTLSVerify, identitytoken, chunked, proxy, address, maxConcurrency, rps, adaptive)");
    std::string username = get_string("username");
    std::string password = get_string("password");
    std::string identity = get_string("identitytoken");
    if (!identity.empty())
      e.credentials = registry::Credentials::identity_token(identity);
    else if (!username.empty() || !password.empty())
      e.credentials = registry::Credentials(username, password);
    if (!password.empty() && username.empty())
      throw ConfigError(where + ": password given without username");
    e.insecure = get_bool("insecure");
    e.tls.verify = !get_bool("skipTLSVerify");
    e.tls.ca_file = get_string("ca");
    e.tls.cert_file = get_string("cert");
    e.tls.key_file = get_string("key");
    e.chunked_upload = get_bool("chunked");
    e.proxy = get_string("proxy");
    if (!e.proxy.empty())
      if (auto why = http::invalid_proxy_url(e.proxy); !why.empty())
        throw ConfigError(where + ": \"proxy\" is not a proxy URL like http://host:port: " + why);
    e.address = get_string("address");
    if (value.contains("adaptive") && !value["adaptive"].is_null()) {
      if (key.find('/') != std::string::npos)
        throw ConfigError(where + ".adaptive: it applies to a whole registry: set it on the key \"" +
                          key.substr(0, key.find('/')) + "\"");
      e.adaptive = get_bool("adaptive");
    }
    for (const char* field : {"maxConcurrency", "rps"}) {
      if (!value.contains(field) || value[field].is_null())
        continue;
      json v = value[field];
      if (key.find('/') != std::string::npos)
        throw ConfigError(where + "." + field + ": a cap applies to a whole registry: set it on the key \"" +
                          key.substr(0, key.find('/')) + "\"");
      bool whole = std::string(field) == "maxConcurrency";
      if (!whole && v.is_string()) { // a YAML file's 1.5 arrives as text (YAML scalars other than integers stay text)
        const std::string text = v.get<std::string>();
        char* end = nullptr;
        double d = std::strtod(text.c_str(), &end);
        if (!text.empty() && end && *end == '\0')
          v = d;
      }
      if (whole ? !v.is_number_integer() || v.get<long long>() < 1 || v.get<long long>() > 10000
                : !v.is_number() || v.get<double>() <= 0 || v.get<double>() > 1e6)
        throw ConfigError(where + "." + field + (whole ? ": must be a whole number from 1 to 10000" : ": must be a number above 0") +
                          ", not " + v.dump());
      if (whole)
        e.max_concurrency = static_cast<int>(v.get<long long>());
      else
        e.rps = v.get<double>();
    }
    if (e.tls.cert_file.empty() != e.tls.key_file.empty())
      throw ConfigError(where + ": \"cert\" and \"key\" must be given together");
    for (const auto* f : {&e.tls.ca_file, &e.tls.cert_file, &e.tls.key_file})
      if (!f->empty() && !std::ifstream(*f))
        throw ConfigError(where + ": cannot read file " + *f);
    config.m_entries.push_back(std::move(e));
  }
  return config;
}

const AuthEntry* AuthConfig::find(const std::string& registry, const std::string& repository) const {
  // Docker Hub answers to several names ("registry.hub.docker.com" in image-syncer's examples,
  // "index.docker.io" in docker's): a key under any of them is Docker Hub's.
  auto hub = [](const std::string& name) {
    auto slash = name.find('/');
    std::string host = name.substr(0, slash);
    return ::registry::is_docker_hub(host) ? "docker.io" + (slash == std::string::npos ? "" : name.substr(slash)) : name;
  };
  const AuthEntry* best = nullptr;
  std::size_t best_size = 0; // of its key under the one name
  const std::string host = hub(registry);
  const std::string full = host + "/" + repository;
  for (const auto& e : m_entries) {
    const std::string key = hub(e.key);
    bool match = key == host || key == full ||
                 (full.size() > key.size() && full.compare(0, key.size(), key) == 0 && full[key.size()] == '/');
    if (match && (!best || key.size() > best_size)) {
      best = &e;
      best_size = key.size();
    }
  }
  return best;
}

} // namespace migrate
