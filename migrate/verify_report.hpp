#pragma once
// What `verify` prints: an aligned table for people, JSON for scripts. Both are made from the
// engine's VerifyResults and the rules that could not be expanded.

#include "migrate/engine.hpp"
#include "migrate/rules.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace migrate {

enum class VerifyStatus { same, different, missing, incomplete, error };

/// SAME (digests equal), DIFFERENT, MISSING (no destination manifest), INCOMPLETE (equal, but the
/// deep check found blobs missing at the destination) or ERROR (a digest could not be read).
VerifyStatus verify_status(const VerifyResult& result);

/// "SAME", "DIFFERENT", ...
std::string to_string(VerifyStatus status);

struct VerifyCounts {
  std::size_t same = 0, different = 0, missing = 0, incomplete = 0, errors = 0, rules_failed = 0;
  std::size_t images() const { return same + different + missing + incomplete + errors; }
  /// Everything verified and no rule failed: verify's exit code 0.
  bool all_same() const { return images() == same && rules_failed == 0; }
};

VerifyCounts verify_counts(const std::vector<VerifyResult>& results, std::size_t rules_failed);

/// "sha256:0123456789ab": the algorithm and the first 12 hex digits, as registries' UIs show them;
/// "-" for an empty digest.
std::string short_digest(const std::string& digest);

/// STATUS, SOURCE, DESTINATION, SOURCE DIGEST, DESTINATION DIGEST in columns as wide as their
/// longest cell (digests shortened; a source digest compared as filtered to --platforms is marked
/// "(filtered)"), one line per image, then the counts.
std::string verify_table(const std::vector<VerifyResult>& results, const VerifyCounts& counts, bool deep);

/// {"images": [{"status", "source", "destination", "source_digest", "destination_digest" (full,
/// null when unknown), "filtered_digest", "missing", "error" (when there are)}], "rule_errors":
/// [{"rule", "error"}], "summary": {counts}}.
nlohmann::json verify_json(const std::vector<VerifyResult>& results, const std::vector<RuleError>& rule_errors,
                           const VerifyCounts& counts);

} // namespace migrate
