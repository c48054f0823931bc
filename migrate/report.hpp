#pragma once
// A run's results as files and lines: the JSON report (--report, the stable contract integration
// tests and automation read), the images that failed as an images file (--write-failed), and the
// documented summary line.

#include "migrate/results.hpp"
#include "migrate/rules.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace migrate {

/// The per-image report: source, destination, rule, digest, status (copied, skipped, kept, planned,
/// failed), replaced digest, bytes, seconds, referrers, blobs, error and errorKind; with totals.
nlohmann::json report_json(const Summary& summary);

/// The images that failed (or were cancelled) as an images file, source -> destination (an array for
/// one source with several), to run again just them (--write-failed); with the rules whose listing
/// failed for a transient reason or was interrupted, as they were written.
nlohmann::json failed_images_json(const Summary& summary, const std::vector<RuleError>& rule_errors);

/// The documented last line: "Images(N) migration finished, F images tasks failed, G tasks generate failed".
std::string summary_line(const Summary& summary);

/// An image's status as the report names it.
std::string status_of(const ImageResult& result);

} // namespace migrate
