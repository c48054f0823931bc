#pragma once
// Base64 (RFC 4648, standard alphabet): Basic auth headers, kubeconfig *-data fields, JWT parts.

#include <optional>
#include <string>
#include <string_view>

namespace http {

std::string base64_encode(std::string_view bytes);

/// Decodes standard or URL-safe base64, padding optional, white space ignored; nullopt if invalid.
std::optional<std::string> base64_decode(std::string_view text);

} // namespace http
