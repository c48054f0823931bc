#include "migrate/rewrite.hpp"

#include "http/url.hpp"
#include "migrate/discover.hpp"
#include "registry/reference.hpp"

#include <set>
#include <sstream>

namespace migrate {

namespace {


/// An entry's lines as one comment line's text.
std::string replace_newlines(std::string text) {
  while (!text.empty() && text.back() == '\n')
    text.pop_back();
  for (auto& c : text)
    if (c == '\n')
      c = ' ';
  return text;
}

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
  std::map<std::string, std::set<std::string>> kustomize; // written name -> its entries (one, normally)
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
    // A Job's pod template cannot change once created; kubectl set image does not take PodTemplates.
    const char* why_manual = use.container_type == "env"
                                 ? "an image the operator runs itself (RELATED_IMAGE_*): left to the operator; point its "
                                   "configuration at the migrated image"
                             : use.kind == "Job"         ? "a Job's pod template is immutable: recreate the Job from its "
                                                           "manifest with the new image"
                             : use.kind == "PodTemplate" ? "kubectl set image cannot change a PodTemplate: edit it"
                             : use.kind.find('.') != std::string::npos
                                 ? "a custom resource: change it where it is defined"
                             : use.container_type != "container" && use.container_type != "initContainer"
                                 ? "kubectl set image cannot change it: edit the manifest"
                                 : nullptr;
    if (!why_manual) {
      sets[workload].push_back(use.container + "=" + it->second);
      ++out.changes;
    } else {
      manual[workload].push_back("# " + use.container_type + " " + use.container +
                                 (use.env_name.empty() ? "" : " " + use.env_name) + ": " + use.image + " -> " +
                                 it->second + " (" + why_manual + ")");
    }
    if (use.container_type == "env")
      continue; // kustomize's images: changes image fields, not environment variables
    // kustomize matches images by name alone and keeps each one's tag and digest unless told: a
    // target that keeps them (what config writes) needs newName only, so that nginx:1.25 and
    // nginx:1.26 both keep their own tags.
    auto source = registry::Reference::parse_normalized(use.image);
    std::ostringstream entry;
    entry << "- name: " << written_name(use.image) << "\n  newName: " << target->name() << "\n";
    if (!target->digest.empty() && (!source || source->digest != target->digest))
      entry << "  digest: " << target->digest << "\n";
    else if (target->digest.empty() && !target->tag.empty() && (!source || source->tag != target->tag))
      entry << "  newTag: \"" << target->tag << "\"\n";
    kustomize[written_name(use.image)].insert(entry.str());
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
  for (const auto& [name, entries] : kustomize) {
    if (entries.size() > 1) // kustomize would apply the first to every image of that name
      kz << "# " << name << " has " << entries.size()
         << " different targets; kustomize takes one images entry per name: edit the manifests of those "
            "workloads instead\n";
    for (const auto& entry : entries)
      kz << (entries.size() > 1 ? "# " + replace_newlines(entry) + "\n" : entry);
  }
  out.kustomize = kz.str();
  return out;
}

} // namespace migrate
