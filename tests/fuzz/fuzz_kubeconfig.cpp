// kubeconfig parsing and validation: an error value, never a crash.
#include "kube/kubeconfig.hpp"

#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto cfg = kube::parse_kubeconfig(text, "fuzz.kubeconfig", "/nonexistent");
  if (cfg) {
    (void)kube::rest_config_for(*cfg, "", "fuzz.kubeconfig");
    for (const auto& [name, _] : cfg->contexts)
      (void)kube::rest_config_for(*cfg, name, "fuzz.kubeconfig");
  }
  return 0;
}
