#include "cmd/logging.hpp"

#include "migrate/config.hpp"
#include "util/file.hpp"
#include "util/text.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <cstdio>
#include <mutex>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include <unistd.h>

namespace cmd {

namespace {

/// %*: the message with its control characters escaped (util::escape_control): text from a registry
/// or an API server may be in it, and must neither forge a log line nor drive the terminal.
class EscapedMessage : public spdlog::custom_flag_formatter {
public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    const std::string escaped = util::escape_control(std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(escaped.data(), escaped.data() + escaped.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<EscapedMessage>(); }
};

/// %j: the message (control characters escaped as for %*) as the inside of a JSON string.
class JsonEscapedMessage : public spdlog::custom_flag_formatter {
public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    static const char* hex = "0123456789abcdef";
    for (char c : util::escape_control(std::string_view(msg.payload.data(), msg.payload.size()))) {
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

/// The log file: appended to, created 0644, never through a symlink someone left at its name.
class AppendFileSink : public spdlog::sinks::base_sink<std::mutex> {
public:
  explicit AppendFileSink(const std::string& path) : m_fd(util::open_for_append(path, 0644)) {
    if (m_fd < 0)
      throw migrate::ConfigError("--log: cannot open log file " + path + ": " + std::strerror(errno) +
                                 (errno == ELOOP ? " (it is a symbolic link)" : ""));
  }
  ~AppendFileSink() override { ::close(m_fd); }

protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    // A full disk must not stop the copy; stderr has the line.
    [[maybe_unused]] int error = util::write_all(m_fd, std::string_view(line.data(), line.size()));
  }
  void flush_() override {}

private:
  int m_fd;
};

/// What is at the bottom of the terminal (show_live_line), and the lock stderr's writers share.
std::mutex live_mutex;
std::string live_line;

/// stderr, with the progress line kept below the log lines: cleared before a line is written, then
/// drawn again, so that the two are never glued together.
class StderrSink : public spdlog::sinks::base_sink<std::mutex> {
protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    std::lock_guard lock(live_mutex);
    if (!live_line.empty())
      std::fputs("\r\033[K", stderr);
    std::fwrite(line.data(), 1, line.size(), stderr);
    if (!live_line.empty())
      std::fputs(live_line.c_str(), stderr);
    std::fflush(stderr);
  }
  void flush_() override { std::fflush(stderr); }
};

} // namespace

void show_live_line(const std::string& text) {
  std::lock_guard lock(live_mutex);
  std::fputs("\r\033[K", stderr);
  std::fputs(text.c_str(), stderr);
  std::fflush(stderr);
  live_line = text;
}

LogFormat parse_log_format(const std::string& text) {
  if (text == "text")
    return LogFormat::text;
  if (text == "json")
    return LogFormat::json;
  throw migrate::ConfigError("--log-format must be text or json, not \"" + text + "\"");
}

std::shared_ptr<spdlog::logger> make_logger(const std::string& file, LogFormat format, bool verbose) {
  std::vector<spdlog::sink_ptr> sinks;
  sinks.push_back(std::make_shared<StderrSink>());
  if (!file.empty()) {
    sinks.push_back(std::make_shared<AppendFileSink>(file));
  }
  auto log = std::make_shared<spdlog::logger>("image-migrator", sinks.begin(), sinks.end());
  if (format == LogFormat::json) {
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    formatter->add_flag<JsonEscapedMessage>('j').set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","msg":"%j"})");
    log->set_formatter(std::move(formatter));
  } else {
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<EscapedMessage>('*').set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ %*");
    log->set_formatter(std::move(formatter));
  }
  log->set_level(verbose ? spdlog::level::debug : spdlog::level::info);
  log->flush_on(spdlog::level::info);
  return log;
}

} // namespace cmd
