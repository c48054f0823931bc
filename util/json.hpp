#pragma once
// JSON from outside the process (a registry, an OCI layout, an API server, the user's files) is
// parsed here only: nesting deeper than a limit is a parse error, so no code that walks, copies,
// dumps or destroys the value can run out of stack on a body of "[[[[...".

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <string_view>

namespace util {

/// Deeper than any manifest, index, token, tag list or Kubernetes object needs (pod specs nest ~15).
inline constexpr int max_json_depth = 64;

/// Json::parse with a nesting limit: throws nlohmann's parse_error for malformed text and for
/// arrays/objects nested deeper than `max_depth`. `also` (optional) sees every parse event, as
/// nlohmann's parser callback does (e.g. to refuse duplicate keys).
template <class Json = nlohmann::json>
Json parse_json(std::string_view text, int max_depth = max_json_depth,
                const std::function<bool(int, typename Json::parse_event_t, Json&)>& also = {}) {
  // The parser keeps its own stack; the callback only sees how deep each value starts.
  auto limit = [&](int depth, typename Json::parse_event_t event, Json& parsed) {
    if ((event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start) &&
        depth >= max_depth)
      throw typename Json::parse_error(Json::parse_error::create(
          113, 0, "nested deeper than " + std::to_string(max_depth) + " levels", nullptr));
    return also ? also(depth, event, parsed) : true;
  };
  return Json::parse(text.begin(), text.end(), limit);
}

/// What went wrong in a parse, for a message: "nested deeper than 64 levels", "syntax error at
/// byte 12 ..." (nlohmann's text without its exception prefix, and never quoting the input).
std::string parse_error_text(const nlohmann::json::exception& e);

/// object[key] when `object` is an object and that value a string; otherwise "" (a wrong type from a
/// remote party is "absent", never an exception escaping into the run).
std::string string_field(const nlohmann::json& object, const char* key);

} // namespace util
