// WWW-Authenticate parsing never crashes or loops.
#include "registry/auth.hpp"

#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)registry::parse_challenges(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
