#pragma once
// Content digests: validation, one-shot and streaming SHA-256 (OpenSSL EVP).

#include "http/result.hpp"

#include <memory>
#include <string>
#include <string_view>

namespace registry {

/// Validates "algorithm:hex" as the OCI image spec defines it (sha256: 64 hex, sha512: 128 hex).
bool valid_digest(std::string_view digest);

/// "sha256:<hex>" of the bytes.
std::string sha256_digest(std::string_view bytes);

/// Incremental SHA-256 used to verify blobs while they stream.
class Sha256 {
public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  void update(std::string_view bytes);
  /// "sha256:<hex>"; the object can not be updated afterwards.
  std::string finish();

private:
  struct Ctx;
  std::unique_ptr<Ctx> m_ctx;
};

} // namespace registry
