#pragma once
// A run's results as files and lines: the JSON report (--report, the stable contract integration
// tests and automation read), the images that failed as an images file (--write-failed), and the
// documented summary line.

#include "migrate/results.hpp"
#include "migrate/rules.hpp"

#include "util/file.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace migrate {

/// One image of the report: source, destination, rule, digest, status (copied, skipped, kept,
/// planned, failed), replaced digest, bytes, seconds, referrers, blobs, error and errorKind.
nlohmann::json image_json(const ImageResult& result);

/// The report (--report), {"images": [image_json...], "totals": {...}}, written as the run goes:
/// each task's final result is appended when it comes (in the order tasks end), so a run holds
/// none of them; the totals go at the end. The file appears whole at finish() (util::AtomicFile),
/// never half-written; a report never finished is removed.
class ReportWriter {
public:
  /// Creates the file's temporary beside `path`; ConfigError naming the path when it cannot.
  explicit ReportWriter(const std::string& path);
  /// Appends one image. One call at a time (the engine's FinalSink is).
  void add(const ImageResult& result);
  /// The totals, then the file in place; ConfigError naming the path when any write failed.
  void finish(const Summary& summary);

private:
  void flush();
  util::AtomicFile m_file;
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
