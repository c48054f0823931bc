#pragma once
// Text from outside (a registry's error message, a tag name, a header) reaches logs and terminals
// only through here: control characters could forge log lines or drive the terminal.

#include <string>
#include <string_view>
#include <vector>

namespace util {

/// `text` with every control character (C0, DEL, and C1 as UTF-8 or raw bytes) written as
/// \n, \r, \t or \xNN, so the result is one printable line. (Backslashes stay as they are: text
/// escaped twice, by a library and then by the logger, reads the same.)
std::string escape_control(std::string_view text);

/// The candidate closest to `word` when it is a plausible typo of it: at most two edits (insertion,
/// deletion, substitution, or a swap of two neighbours, the usual shape of a typo) and fewer edits
/// than the candidate has letters; "" when none is.
std::string closest_word(std::string_view word, const std::vector<std::string>& candidates);

/// `parts` with `separator` between each two: join({"a", "b"}, ", ") is "a, b".
std::string join(const std::vector<std::string>& parts, std::string_view separator);

} // namespace util
