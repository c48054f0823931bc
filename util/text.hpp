#pragma once
// Text from outside (a registry's error message, a tag name, a header) reaches logs and terminals
// only through here: control characters could forge log lines or drive the terminal.

#include <string>
#include <string_view>

namespace util {

/// `text` with every control character (C0, DEL, and C1 as UTF-8 or raw bytes) written as
/// \n, \r, \t or \xNN, so the result is one printable line. (Backslashes stay as they are: text
/// escaped twice, by a library and then by the logger, reads the same.)
std::string escape_control(std::string_view text);

} // namespace util
