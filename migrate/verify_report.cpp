#include "migrate/verify_report.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace migrate {

VerifyStatus verify_status(const VerifyResult& v) {
  if (!v.error.empty())
    return VerifyStatus::error;
  if (v.destination_digest.empty())
    return VerifyStatus::missing;
  if (v.same())
    return v.missing.empty() ? VerifyStatus::same : VerifyStatus::incomplete;
  return VerifyStatus::different;
}

std::string to_string(VerifyStatus status) {
  switch (status) {
  case VerifyStatus::same:
    return "SAME";
  case VerifyStatus::different:
    return "DIFFERENT";
  case VerifyStatus::missing:
    return "MISSING";
  case VerifyStatus::incomplete:
    return "INCOMPLETE";
  case VerifyStatus::error:
    return "ERROR";
  }
  return "ERROR";
}

VerifyCounts verify_counts(const std::vector<VerifyResult>& results, std::size_t rules_failed) {
  VerifyCounts c;
  c.rules_failed = rules_failed;
  for (const auto& v : results)
    switch (verify_status(v)) {
    case VerifyStatus::same:
      ++c.same;
      break;
    case VerifyStatus::different:
      ++c.different;
      break;
    case VerifyStatus::missing:
      ++c.missing;
      break;
    case VerifyStatus::incomplete:
      ++c.incomplete;
      break;
    case VerifyStatus::error:
      ++c.errors;
      break;
    }
  return c;
}

std::string short_digest(const std::string& digest) {
  if (digest.empty())
    return "-";
  auto colon = digest.find(':');
  if (colon == std::string::npos)
    return digest;
  return digest.substr(0, std::min(digest.size(), colon + 1 + 12));
}

std::string verify_table(const std::vector<VerifyResult>& results, const VerifyCounts& counts, bool deep) {
  using Row = std::array<std::string, 5>;
  std::vector<Row> rows{{"STATUS", "SOURCE", "DESTINATION", "SOURCE DIGEST", "DESTINATION DIGEST"}};
  for (const auto& v : results) {
    // With --platforms the destination is compared with the source index filtered to them: that is
    // the digest to show.
    std::string source = v.filtered_digest.empty() ? short_digest(v.source_digest)
                                                   : short_digest(v.filtered_digest) + " (filtered)";
    rows.push_back({to_string(verify_status(v)), v.task.source.to_string(), v.task.destination.to_string(), source,
                    short_digest(v.destination_digest)});
  }
  std::array<std::size_t, 5> width{};
  for (const auto& row : rows)
    for (std::size_t i = 0; i < row.size(); ++i)
      width[i] = std::max(width[i], row[i].size());
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size())
        line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  out += "verified " + std::to_string(counts.images()) + " image(s): " + std::to_string(counts.same) + " same, " +
         std::to_string(counts.different) + " different, " + std::to_string(counts.missing) + " missing, " +
         std::to_string(counts.errors) + " errors, " + std::to_string(counts.rules_failed) + " rules failed";
  if (deep)
    out += ", " + std::to_string(counts.incomplete) + " incomplete";
  return out + "\n";
}

nlohmann::json verify_json(const std::vector<VerifyResult>& results, const std::vector<RuleError>& rule_errors,
                           const VerifyCounts& counts) {
  using nlohmann::json;
  auto digest = [](const std::string& d) { return d.empty() ? json(nullptr) : json(d); };
  json images = json::array();
  for (const auto& v : results) {
    std::string status = to_string(verify_status(v));
    std::transform(status.begin(), status.end(), status.begin(), [](unsigned char c) { return std::tolower(c); });
    json image = {{"status", status},
                  {"source", v.task.source.to_string()},
                  {"destination", v.task.destination.to_string()},
                  {"source_digest", digest(v.source_digest)},
                  {"destination_digest", digest(v.destination_digest)}};
    if (!v.filtered_digest.empty())
      image["filtered_digest"] = v.filtered_digest;
    if (!v.missing.empty())
      image["missing"] = v.missing;
    if (!v.error.empty())
      image["error"] = v.error;
    images.push_back(std::move(image));
  }
  json errors = json::array();
  for (const auto& e : rule_errors)
    errors.push_back({{"rule", e.rule}, {"error", e.message}});
  json summary = {{"images", counts.images()},         {"same", counts.same},
                  {"different", counts.different},     {"missing", counts.missing},
                  {"incomplete", counts.incomplete},   {"errors", counts.errors},
                  {"rules_failed", counts.rules_failed}};
  return {{"images", images}, {"rule_errors", errors}, {"summary", summary}};
}

} // namespace migrate
