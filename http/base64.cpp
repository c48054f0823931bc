#include "http/base64.hpp"

#include <openssl/evp.h>

namespace http {

// OpenSSL does the coding; what is ours is the leniency of decode: the URL-safe alphabet (JWTs),
// missing padding and white space (kubeconfig fields folded by editors).

std::string base64_encode(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  std::string standard;
  standard.reserve(text.size() + 3);
  std::size_t padding = 0;
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
      continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    if (padding > 0)
      return std::nullopt; // data after padding
    standard += c == '-' ? '+' : c == '_' ? '/' : c;
  }
  // Padding, when there is any, may not go beyond the last group.
  const std::size_t missing = (4 - standard.size() % 4) % 4;
  if (missing == 3 || padding > missing)
    return std::nullopt; // a lone trailing character cannot encode a byte
  standard.append(missing, '=');
  if (standard.empty())
    return std::string();
  std::string out(standard.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(standard.data()), static_cast<int>(standard.size()));
  if (n < 0)
    return std::nullopt; // a character outside the alphabet
  // EVP_DecodeBlock counts the bytes the padding stands for: drop them.
  out.resize(static_cast<std::size_t>(n) - missing);
  return out;
}

} // namespace http
