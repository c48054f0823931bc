#include "registry/digest.hpp"

#include <openssl/evp.h>

#include <cctype>
#include <stdexcept>

namespace registry {

bool valid_digest(std::string_view digest) {
  auto colon = digest.find(':');
  if (colon == std::string_view::npos || colon == 0)
    return false;
  auto algorithm = digest.substr(0, colon);
  auto hex = digest.substr(colon + 1);
  for (char c : hex)
    if (!std::isxdigit(static_cast<unsigned char>(c)) || std::isupper(static_cast<unsigned char>(c)))
      return false;
  if (algorithm == "sha256")
    return hex.size() == 64;
  if (algorithm == "sha512")
    return hex.size() == 128;
  return false;
}

std::optional<std::array<unsigned char, 32>> sha256_bytes(std::string_view digest) {
  constexpr std::string_view prefix = "sha256:";
  if (digest.size() != prefix.size() + 64 || !digest.starts_with(prefix))
    return std::nullopt;
  auto value = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; };
  std::array<unsigned char, 32> bytes{};
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const int high = value(digest[prefix.size() + 2 * i]), low = value(digest[prefix.size() + 2 * i + 1]);
    if (high < 0 || low < 0)
      return std::nullopt;
    bytes[i] = static_cast<unsigned char>(high << 4 | low);
  }
  return bytes;
}

struct Digester::Ctx {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~Ctx() { EVP_MD_CTX_free(ctx); }
};

Digester::Digester(std::string_view algorithm) : m_ctx(std::make_unique<Ctx>()), m_algorithm(algorithm) {
  const EVP_MD* md = algorithm == "sha256" ? EVP_sha256() : algorithm == "sha512" ? EVP_sha512() : nullptr;
  if (!md)
    throw std::invalid_argument("digest algorithm \"" + m_algorithm + "\" is not sha256 or sha512");
  if (!m_ctx->ctx || EVP_DigestInit_ex(m_ctx->ctx, md, nullptr) != 1)
    throw std::runtime_error("OpenSSL: cannot initialise " + m_algorithm);
}

Result<Digester> Digester::for_digest(std::string_view digest) {
  if (!valid_digest(digest))
    return http::make_error(http::ErrorKind::invalid, "\"" + std::string(digest.substr(0, 80)) +
                                                          "\" is not a digest this tool can verify (sha256 or sha512)");
  return Digester(digest.substr(0, digest.find(':')));
}

Digester::~Digester() = default;
Digester::Digester(Digester&&) noexcept = default;
Digester& Digester::operator=(Digester&&) noexcept = default;

void Digester::update(std::string_view bytes) { EVP_DigestUpdate(m_ctx->ctx, bytes.data(), bytes.size()); }

std::string Digester::finish() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(m_ctx->ctx, md, &len);
  static const char* hex = "0123456789abcdef";
  std::string out = m_algorithm + ":";
  for (unsigned i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

std::string sha256_digest(std::string_view bytes) {
  Digester h;
  h.update(bytes);
  return h.finish();
}

std::string digest_like(std::string_view digest, std::string_view bytes) {
  auto h = Digester::for_digest(digest);
  if (!h)
    return {};
  h->update(bytes);
  return h->finish();
}

} // namespace registry
