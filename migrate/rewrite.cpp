#include "migrate/rewrite.hpp"

#include "http/url.hpp"
#include "migrate/discover.hpp"
#include "registry/reference.hpp"

#include <set>
#include <sstream>

namespace migrate {

namespace {


/// The image name as kustomize matches it: the reference as written, without tag and digest.
std::string written_name(const std::string& image) {
  std::string s = image.substr(0, image.find('@'));
  auto slash = s.rfind('/');
  auto colon = s.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash))
    s = s.substr(0, colon);
  return s;
}

} // namespace

Rewrite plan_rewrite(const kube::Inventory& inventory, const std::map<std::string, std::string>& targets) {
  Rewrite out;
  // kind/ns/name -> container=target, in discovery order, deduplicated.
  std::map<std::string, std::vector<std::string>> sets;
  std::map<std::string, std::vector<std::string>> manual;
  std::map<std::string, std::string> kustomize; // written name -> entry lines
  std::set<std::string> seen;
  for (const auto& use : inventory.uses) {
    if (use.owned)
      continue;
    auto key = source_key(use.image);
    if (!key)
      continue;
    auto it = targets.find(*key);
    if (it == targets.end() || it->second.empty())
      continue;
    auto target = registry::Reference::parse_normalized(it->second);
    if (!target)
      continue;
    std::string workload = "-n " + use.ns + " " + http::to_lower(use.kind) + "/" + use.name;
    if (!seen.insert(workload + "|" + use.container + "|" + use.container_type).second)
      continue;
    if (use.container_type == "container" || use.container_type == "initContainer") {
      sets[workload].push_back(use.container + "=" + it->second);
      ++out.changes;
    } else {
      manual[workload].push_back("# " + use.container_type + " " + use.container + ": " + use.image + " -> " +
                                 it->second + " (kubectl set image cannot change it: edit the manifest)");
    }
    std::ostringstream entry;
    entry << "- name: " << written_name(use.image) << "\n  newName: " << target->name() << "\n";
    if (!target->digest.empty())
      entry << "  digest: " << target->digest << "\n";
    else if (!target->tag.empty())
      entry << "  newTag: \"" << target->tag << "\"\n";
    kustomize.emplace(written_name(use.image) + "|" + it->second, entry.str());
  }
  std::ostringstream cmds;
  for (const auto& [workload, changes] : sets) {
    auto space = workload.find(' ', 3); // "-n NS" | " kind/name"
    cmds << "kubectl " << workload.substr(0, space) << " set image" << workload.substr(space);
    for (const auto& c : changes)
      cmds << " " << c;
    cmds << "\n";
  }
  for (const auto& [workload, lines] : manual)
    for (const auto& l : lines)
      cmds << l << " [" << workload << "]\n";
  out.kubectl = cmds.str();
  out.workloads = sets.size();
  std::ostringstream kz;
  kz << "images:\n";
  for (const auto& [key, entry] : kustomize)
    kz << entry;
  out.kustomize = kz.str();
  return out;
}

} // namespace migrate
