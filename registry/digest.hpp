#pragma once
// Content digests: validation, one-shot and streaming hashes (OpenSSL EVP) for the two algorithms
// the OCI image spec registers, sha256 and sha512. Every digest we accept is one we can verify.

#include "http/result.hpp"

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace registry {

using http::Result;

/// Validates "algorithm:hex" as the OCI image spec defines it (sha256: 64 hex, sha512: 128 hex,
/// lower case). Any other algorithm is refused: we could not verify the bytes.
bool valid_digest(std::string_view digest);

/// The 32 bytes a "sha256:" digest spells (64 lower-case hex digits); nullopt for anything else.
/// Kept this way, a digest costs 32 bytes instead of a 71-character string.
std::optional<std::array<unsigned char, 32>> sha256_bytes(std::string_view digest);

/// "sha256:<hex>" of the bytes.
std::string sha256_digest(std::string_view bytes);

/// "<algorithm>:<hex>" of the bytes, in the algorithm of `digest` (a valid digest); "" otherwise.
std::string digest_like(std::string_view digest, std::string_view bytes);

/// Incremental hash used to verify blobs while they stream.
class Digester {
public:
  /// "sha256" or "sha512"; anything else throws std::invalid_argument (check with valid_digest first).
  explicit Digester(std::string_view algorithm = "sha256");
  /// The digester for the algorithm of `digest`; an error naming it when it is not a valid digest.
  static Result<Digester> for_digest(std::string_view digest);
  ~Digester();
  Digester(Digester&&) noexcept;
  Digester& operator=(Digester&&) noexcept;
  void update(std::string_view bytes);
  /// "<algorithm>:<hex>"; the object can not be updated afterwards.
  std::string finish();

private:
  struct Ctx;
  std::unique_ptr<Ctx> m_ctx;
  std::string m_algorithm;
};

} // namespace registry
