// Manifest parsing (every media type) and registry error bodies never crash.
#include "http/client.hpp"
#include "registry/client.hpp"
#include "registry/manifest.hpp"

#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string body(reinterpret_cast<const char*>(data), size);
  for (auto type : {"", "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.docker.distribution.manifest.v1+prettyjws"})
    (void)registry::parse_manifest(body, type);
  http::Response r;
  r.status = 400;
  r.body = body;
  (void)registry::registry_error("fuzz", r);
  return 0;
}
