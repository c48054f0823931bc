#pragma once
// Reading fields of JSON that comes from the network or from disk: a wrong type is "absent", never
// an exception escaping into the run.

#include <nlohmann/json.hpp>

#include <string>

namespace registry {

/// object[key] when `object` is an object and that value a string; otherwise "".
inline std::string string_field(const nlohmann::json& object, const char* key) {
  if (!object.is_object())
    return {};
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

} // namespace registry
