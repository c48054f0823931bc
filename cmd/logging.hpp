#pragma once
// The CLI's log sinks: stderr plus an optional file, as text or as one JSON object per line
// (--log-format json) for log collectors.

#include <memory>
#include <string>

namespace spdlog {
class logger;
}

namespace cmd {

enum class LogFormat { text, json };

/// Parses "text" or "json"; throws migrate::ConfigError otherwise.
LogFormat parse_log_format(const std::string& text);

/// A logger writing to stderr and, when `file` is not empty, to that file (ConfigError if it cannot
/// be opened).
std::shared_ptr<spdlog::logger> make_logger(const std::string& file, LogFormat format, bool verbose);

/// Draws `text` as the last line of the terminal (stderr), replacing the one before; log lines
/// written meanwhile go above it. "" clears it.
void show_live_line(const std::string& text);

} // namespace cmd
