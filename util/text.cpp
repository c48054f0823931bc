#include "util/text.hpp"

#include <algorithm>

namespace util {

namespace {

void hex(std::string& out, unsigned char c) {
  static const char* digits = "0123456789abcdef";
  out += "\\x";
  out += digits[c >> 4];
  out += digits[c & 15];
}

/// The length of the well-formed UTF-8 sequence at text[i] (1-4), or 0 when it is not one.
std::size_t utf8_length(std::string_view text, std::size_t i, char32_t& code) {
  const auto c = static_cast<unsigned char>(text[i]);
  std::size_t n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
  if (n == 0 || c > 0xf4 || i + n > text.size())
    return 0;
  code = c & (0xff >> (n + 1));
  for (std::size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(text[i + k]);
    if ((b & 0xc0) != 0x80)
      return 0;
    code = (code << 6) | (b & 0x3f);
  }
  const char32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
  if (code < least[n] || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff))
    return 0; // overlong, beyond Unicode, or a surrogate
  return n;
}

} // namespace

std::string escape_control(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if (c == '\n')
        out += "\\n";
      else if (c == '\r')
        out += "\\r";
      else if (c == '\t')
        out += "\\t";
      else if (c < 0x20 || c == 0x7f)
        hex(out, c);
      else
        out += static_cast<char>(c);
      ++i;
      continue;
    }
    char32_t code = 0;
    std::size_t n = utf8_length(text, i, code);
    if (n == 0 || (code >= 0x80 && code <= 0x9f)) {
      // Not UTF-8 (a raw byte may be a C1 control such as CSI, 0x9b), or a C1 control written in UTF-8.
      for (std::size_t k = 0; k < (n ? n : 1); ++k)
        hex(out, static_cast<unsigned char>(text[i + k]));
      i += n ? n : 1;
      continue;
    }
    out.append(text.substr(i, n));
    i += n;
  }
  return out;
}

std::string closest_word(std::string_view word, const std::vector<std::string>& candidates) {
  // Optimal string alignment distance.
  auto distance = [](std::string_view a, std::string_view b) {
    std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
    for (std::size_t i = 0; i <= a.size(); ++i)
      d[i][0] = i;
    for (std::size_t j = 0; j <= b.size(); ++j)
      d[0][j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i)
      for (std::size_t j = 1; j <= b.size(); ++j) {
        d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
        if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
          d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    return d[a.size()][b.size()];
  };
  std::string best;
  std::size_t best_distance = 3;
  for (const auto& c : candidates)
    if (auto dist = distance(word, c); dist < best_distance && dist < c.size()) {
      best = c;
      best_distance = dist;
    }
  return best;
}

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i)
      out += separator;
    out += parts[i];
  }
  return out;
}

} // namespace util
