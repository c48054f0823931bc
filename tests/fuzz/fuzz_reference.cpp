// Reference parsing never crashes, and what parses prints back to something that parses the same.
#include "registry/reference.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  for (auto parse : {&registry::Reference::parse_normalized, &registry::Reference::parse_explicit}) {
    auto r = parse(text);
    if (!r)
      continue;
    auto again = parse(r->to_string());
    if (!again || again->to_string() != r->to_string())
      std::abort();
  }
  return 0;
}
