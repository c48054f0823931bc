#include "util/env.hpp"

#include <cstdlib>

namespace util {

EnvLookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v)
      return std::nullopt;
    return std::string(v);
  };
}

std::string env_or_empty(const EnvLookup& env, const std::string& name) {
  if (!env)
    return {};
  return env(name).value_or("");
}

} // namespace util
