#include "cmd/logging.hpp"

#include "migrate/config.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace cmd {

namespace {

/// %j: the message as the inside of a JSON string.
class JsonEscapedMessage : public spdlog::custom_flag_formatter {
public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    static const char* hex = "0123456789abcdef";
    for (char c : std::string_view(msg.payload.data(), msg.payload.size())) {
      switch (c) {
      case '"':
        dest.append(std::string_view("\\\""));
        break;
      case '\\':
        dest.append(std::string_view("\\\\"));
        break;
      case '\n':
        dest.append(std::string_view("\\n"));
        break;
      case '\t':
        dest.append(std::string_view("\\t"));
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char esc[6] = {'\\', 'u', '0', '0', hex[(c >> 4) & 15], hex[c & 15]};
          dest.append(std::string_view(esc, 6));
        } else {
          dest.push_back(c);
        }
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JsonEscapedMessage>(); }
};

} // namespace

LogFormat parse_log_format(const std::string& text) {
  if (text == "text")
    return LogFormat::text;
  if (text == "json")
    return LogFormat::json;
  throw migrate::ConfigError("--log-format must be text or json, not \"" + text + "\"");
}

std::shared_ptr<spdlog::logger> make_logger(const std::string& file, LogFormat format, bool verbose) {
  std::vector<spdlog::sink_ptr> sinks;
  sinks.push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
  if (!file.empty()) {
    try {
      sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(file));
    } catch (const spdlog::spdlog_ex&) {
      throw migrate::ConfigError("--log: cannot open log file " + file);
    }
  }
  auto log = std::make_shared<spdlog::logger>("image-migrator", sinks.begin(), sinks.end());
  if (format == LogFormat::json) {
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    formatter->add_flag<JsonEscapedMessage>('j').set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","msg":"%j"})");
    log->set_formatter(std::move(formatter));
  } else {
    log->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ %v");
  }
  log->set_level(verbose ? spdlog::level::debug : spdlog::level::info);
  log->flush_on(spdlog::level::info);
  return log;
}

} // namespace cmd
