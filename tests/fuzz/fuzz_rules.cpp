// The images/auth loader (JSON and YAML) and rule expansion: a ConfigError or rule errors, never a
// crash, whatever the document.
#include "migrate/config.hpp"
#include "migrate/rules.hpp"

#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto env = [](const std::string&) -> std::optional<std::string> { return std::string("x"); };
  auto tags = [](const registry::Reference&) -> http::Result<std::vector<std::string>> {
    return std::vector<std::string>{"1", "2"};
  };
  for (const char* name : {"images.json", "images.yaml"}) {
    try {
      auto doc = migrate::parse_document(text, name);
      std::vector<migrate::RuleError> errors;
      auto rules = migrate::read_rules(doc, name, errors);
      migrate::Defaults d{"reg.io", "ns", "src.io", "lib"};
      (void)migrate::expand_rules(rules, d, tags);
      (void)migrate::AuthConfig::from_json(doc, name, env);
    } catch (const migrate::ConfigError&) {
    }
  }
  return 0;
}
