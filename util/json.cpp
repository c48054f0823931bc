#include "util/json.hpp"

namespace util {

std::string parse_error_text(const nlohmann::json::exception& e) {
  std::string what = e.what();
  if (auto close = what.find("] "); what.rfind("[json.exception.", 0) == 0 && close != std::string::npos)
    what.erase(0, close + 2);
  // nlohmann quotes what it read ("last read: '...'"): that may be a secret, or control bytes.
  if (auto lr = what.find("; last read:"); lr != std::string::npos)
    what.erase(lr);
  if (what.rfind("parse error: ", 0) == 0)
    what.erase(0, 13);
  return what.substr(0, 200);
}

std::string string_field(const nlohmann::json& object, const char* key) {
  if (!object.is_object())
    return {};
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

} // namespace util
