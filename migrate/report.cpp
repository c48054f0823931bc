#include "migrate/report.hpp"

namespace migrate {

std::string status_of(const ImageResult& r) {
  return !r.ok ? "failed" : r.kept ? "kept" : r.planned ? "planned" : r.skipped ? "skipped" : "copied";
}

nlohmann::json report_json(const Summary& s) {
  nlohmann::json images = nlohmann::json::array();
  for (const auto& r : s.results) {
    images.push_back({{"source", r.task.source.to_string()},
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
                      {"errorKind", !r.ok && r.error_kind ? nlohmann::json(http::to_string(*r.error_kind))
                                                          : nlohmann::json(nullptr)}});
  }
  return {{"images", images},
          {"totals", {{"images", s.images}, {"failed", s.failed}, {"generateFailed", s.generate_failed},
                      {"bytes", s.bytes}, {"resumedDownloads", s.resumed}, {"seconds", s.seconds}}}};
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
