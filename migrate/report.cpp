#include "migrate/report.hpp"

#include "migrate/config.hpp"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <unistd.h>

namespace migrate {

std::string status_of(const ImageResult& r) {
  return !r.ok ? "failed" : r.kept ? "kept" : r.planned ? "planned" : r.skipped ? "skipped" : "copied";
}

nlohmann::json image_json(const ImageResult& r) {
  return {{"source", r.task.source.to_string()},
          {"destination", r.task.destination.to_string()},
          {"rule", r.task.rule},
          {"digest", r.digest},
          {"replaced", r.replaced.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.replaced)},
          {"status", status_of(r)},
          {"bytes", r.bytes},
          {"seconds", r.seconds},
          {"referrers", r.referrers},
          {"blobs", {{"copied", r.blobs_copied}, {"existed", r.blobs_existed}, {"mounted", r.blobs_mounted},
                     {"foreign", r.blobs_foreign}}},
          {"error", r.error.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.error)},
          {"errorKind", !r.ok && r.error_kind ? nlohmann::json(http::to_string(*r.error_kind)) : nlohmann::json(nullptr)}};
}

namespace {

/// `doc` as dump(2) writes it, each line after the first indented by `indent` more spaces: the
/// streamed report reads as the whole document dumped at once. Invalid UTF-8 (a registry's bytes
/// in an error) is replaced, never an exception that would lose the report.
std::string dump_at(const nlohmann::json& doc, std::size_t indent) {
  std::string text = doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (char c : text) {
    out += c;
    if (c == '\n') // a newline inside a string is written \n: every raw one is dump's own
      out.append(indent, ' ');
  }
  return out;
}

constexpr std::size_t report_flush_bytes = 64 * 1024;

} // namespace

ReportWriter::ReportWriter(const std::string& path) : m_path(path) {
  m_spool = ::open(util::directory_of(path).c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (m_spool < 0) {
    m_file.emplace(path, 0644);
    if (!m_file->ok())
      throw ConfigError(m_file->error());
  }
  m_buffer = "{\n  \"images\": [";
}

ReportWriter::~ReportWriter() {
  if (m_spool >= 0)
    ::close(m_spool);
}

void ReportWriter::add(const ImageResult& result) {
  m_buffer += m_images++ ? ",\n    " : "\n    ";
  m_buffer += dump_at(image_json(result), 4);
  if (m_buffer.size() >= report_flush_bytes)
    flush();
}

void ReportWriter::flush() {
  if (m_spool < 0) {
    if (m_file->ok())
      m_file->write(m_buffer);
  } else if (m_error.empty()) {
    if (int error = util::write_all(m_spool, m_buffer))
      m_error = m_path + ": writing the report: " + std::strerror(error);
  }
  m_buffer.clear();
}

void ReportWriter::finish(const Summary& s, const std::vector<RuleError>& rule_errors) {
  const nlohmann::json totals = {{"images", s.images}, {"failed", s.failed}, {"generateFailed", s.generate_failed},
                                 {"bytes", s.bytes}, {"resumedDownloads", s.resumed}, {"seconds", s.seconds}};
  nlohmann::json rules = nlohmann::json::array();
  for (const auto& e : rule_errors)
    rules.push_back({{"rule", e.rule}, {"error", e.message}, {"rerun", e.rerun.has_value()}});
  m_buffer += m_images ? "\n  ],\n  \"ruleErrors\": " : "],\n  \"ruleErrors\": ";
  m_buffer += dump_at(rules, 2);
  m_buffer += ",\n  \"totals\": ";
  m_buffer += dump_at(totals, 2);
  m_buffer += "\n}\n";
  flush();
  if (!m_error.empty())
    throw ConfigError(m_error);
  if (m_spool >= 0) { // the spool, copied into the report's temporary
    m_file.emplace(m_path, 0644);
    char chunk[65536];
    for (off_t at = 0; m_file->ok();) {
      const ssize_t n = ::pread(m_spool, chunk, sizeof chunk, at);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        throw ConfigError(m_path + ": reading the report back: " + std::strerror(errno));
      if (n == 0)
        break;
      m_file->write(std::string_view(chunk, static_cast<std::size_t>(n)));
      at += n;
    }
  }
  if (!m_file->ok() || !m_file->commit())
    throw ConfigError(m_file->error());
}

nlohmann::json failed_images_json(const Summary& s, const std::vector<RuleError>& rule_errors) {
  nlohmann::json doc = nlohmann::json::object();
  for (const auto& r : s.results) {
    if (r.ok)
      continue;
    const std::string source = r.task.source.to_string();
    // A destination by digest is written without it: the copy keeps the source's digest anyway.
    const auto& to = r.task.destination;
    const std::string destination = to.name() + (to.tag.empty() ? "" : ":" + to.tag);
    auto it = doc.find(source);
    if (it == doc.end())
      doc[source] = destination;
    else if (it->is_string())
      *it = nlohmann::json::array({*it, destination}); // one source, several destinations: rule 4
    else
      it->push_back(destination);
  }
  // Rules that produced no task because their listing failed or was interrupted: the rule again.
  for (const auto& e : rule_errors)
    if (e.rerun && !doc.contains(e.rule))
      doc[e.rule] = *e.rerun;
  return doc;
}

std::string summary_line(const Summary& s) {
  return "Images(" + std::to_string(s.images) + ") migration finished, " + std::to_string(s.failed) +
         " images tasks failed, " + std::to_string(s.generate_failed) + " tasks generate failed";
}

} // namespace migrate
