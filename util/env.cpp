#include "util/env.hpp"

#include <algorithm>
#include <cstdlib>
#include <string_view>

extern char** environ;

namespace util {

EnvLookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v)
      return std::nullopt;
    return std::string(v);
  };
}

std::optional<std::string> env_value(const EnvLookup& env, const std::string& name) {
  if (!env)
    return std::nullopt;
  return env(name);
}

std::string env_or_empty(const EnvLookup& env, const std::string& name) { return env_value(env, name).value_or(""); }

std::vector<std::string> child_environment(const std::vector<std::pair<std::string, std::string>>& overrides) {
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e) {
    const std::string_view entry(*e);
    const std::string_view name = entry.substr(0, entry.find('='));
    if (std::none_of(overrides.begin(), overrides.end(), [&](const auto& o) { return o.first == name; }))
      out.emplace_back(entry);
  }
  for (const auto& [name, value] : overrides)
    out.push_back(name + "=" + value);
  return out;
}

} // namespace util
