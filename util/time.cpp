#include "util/time.hpp"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>

namespace util {

std::optional<double> parse_rfc3339(const std::string& text) {
  int y, mo, d, h, mi, sec, used = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6 || used == 0)
    return std::nullopt;
  std::size_t i = static_cast<std::size_t>(used);
  double fraction = 0;
  if (i < text.size() && text[i] == '.') {
    double scale = 0.1;
    std::size_t digits = 0;
    for (++i; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i, ++digits, scale /= 10)
      fraction += (text[i] - '0') * scale;
    if (digits == 0)
      return std::nullopt;
  }
  long offset = 0;
  if (i < text.size() && (text[i] == 'Z' || text[i] == 'z')) {
    ++i;
  } else if (i + 6 == text.size() && (text[i] == '+' || text[i] == '-') && text[i + 3] == ':') {
    auto digit = [&](std::size_t k) { return std::isdigit(static_cast<unsigned char>(text[i + k])) != 0; };
    if (!(digit(1) && digit(2) && digit(4) && digit(5)))
      return std::nullopt;
    const int oh = (text[i + 1] - '0') * 10 + (text[i + 2] - '0'), om = (text[i + 4] - '0') * 10 + (text[i + 5] - '0');
    if (oh > 23 || om > 59)
      return std::nullopt;
    offset = (text[i] == '+' ? 1 : -1) * (oh * 3600L + om * 60L);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != text.size() || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
    return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  return static_cast<double>(timegm(&tm) - offset) + fraction;
}

std::optional<std::chrono::system_clock::time_point> parse_rfc3339_time(const std::string& text) {
  auto seconds = parse_rfc3339(text);
  if (!seconds)
    return std::nullopt;
  return std::chrono::system_clock::from_time_t(static_cast<std::time_t>(std::floor(*seconds)));
}

std::string format_rfc3339(std::chrono::system_clock::time_point t) {
  const std::time_t s = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

} // namespace util
