#pragma once
// RFC 3339 timestamps, as registries (image configs' "created") and Kubernetes (exec credentials'
// expirationTimestamp, annotations) write them: one grammar, one parser.

#include <chrono>
#include <optional>
#include <string>

namespace util {

/// Seconds since the epoch of "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)" ('t'/'z' and a space
/// for 'T' accepted); nullopt for anything else (a date alone, no zone, a month 13).
std::optional<double> parse_rfc3339(const std::string& text);

/// The same as a time point (the fraction dropped).
std::optional<std::chrono::system_clock::time_point> parse_rfc3339_time(const std::string& text);

/// `t` as "YYYY-MM-DDTHH:MM:SSZ" (UTC).
std::string format_rfc3339(std::chrono::system_clock::time_point t);

} // namespace util
