#pragma once
// A run's results as files and lines: the JSON report (--report, the stable contract integration
// tests and automation read), the images that failed as an images file (--write-failed), and the
// documented summary line.

#include "migrate/results.hpp"
#include "migrate/rules.hpp"

#include "util/file.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace migrate {

/// One image of the report: source, destination, rule, digest, status (copied, skipped, kept,
/// planned, failed), replaced digest, bytes, seconds, referrers, blobs, error and errorKind.
nlohmann::json image_json(const ImageResult& result);

/// The report (--report), {"images": [image_json...], "ruleErrors": [...], "totals": {...}}, written as the run goes:
/// each task's final result is appended when it comes (in the order tasks end), so a run holds
/// none of them; the totals go at the end. The images are spooled to a file without a name in the
/// report's directory (O_TMPFILE: nothing is left behind, even by a SIGKILL); at finish() the report
/// is written from it through util::AtomicFile, never half-written. A filesystem without O_TMPFILE
/// gets AtomicFile's temporary from the start (a SIGKILL leaves that one).
class ReportWriter {
public:
  /// Opens the spool beside `path`; ConfigError naming the path when it cannot.
  explicit ReportWriter(const std::string& path);
  ~ReportWriter();
  ReportWriter(const ReportWriter&) = delete;
  ReportWriter& operator=(const ReportWriter&) = delete;
  /// Appends one image. One call at a time (the engine's FinalSink is).
  void add(const ImageResult& result);
  /// The rules that made no task (rule, error, whether another run may get past it), the totals,
  /// then the file in place; ConfigError naming the path when any write failed.
  void finish(const Summary& summary, const std::vector<RuleError>& rule_errors = {});

private:
  void flush();
  std::string m_path;
  int m_spool = -1;                      ///< the unnamed file the images go to, or -1
  std::optional<util::AtomicFile> m_file; ///< the report's temporary (at finish(), or from the start without a spool)
  std::string m_error;                   ///< why writing the spool failed
  std::string m_buffer;
  std::size_t m_images = 0;
};

/// The images that failed (or were cancelled) as an images file, source -> destination (an array for
/// one source with several), to run again just them (--write-failed); with the rules whose listing
/// failed for a transient reason or was interrupted, as they were written.
nlohmann::json failed_images_json(const Summary& summary, const std::vector<RuleError>& rule_errors);

/// The documented last line: "Images(N) migration finished, F images tasks failed, G tasks generate failed".
std::string summary_line(const Summary& summary);

/// An image's status as the report names it.
std::string status_of(const ImageResult& result);

} // namespace migrate
