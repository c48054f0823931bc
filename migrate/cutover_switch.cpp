// The cutover's second and third steps: rewrite --apply switches the workloads a ClusterCheck passed
// to their new images (annotating what they ran before), and rollback puts back what those
// annotations say, distrusted: only images and containers the workload still has, only objects
// nobody owns.
#include "migrate/cutover.hpp"

#include "http/url.hpp"
#include "registry/reference.hpp"
#include "util/json.hpp"
#include "util/text.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

namespace migrate {
namespace {

using nlohmann::json;

/// Kinds whose objects rewrite --apply patches (the pod template, or the Pod's own spec).
bool patchable(const std::string& kind) {
  return kind == "Deployment" || kind == "StatefulSet" || kind == "DaemonSet" || kind == "CronJob" ||
         kind == "ReplicaSet" || kind == "ReplicationController" || kind == "Pod";
}


/// The annotation's map: {"containers": {"web": "image"}, "initContainers": {...}}.
json images_by_field(const json& spec) {
  json out = json::object();
  for (const char* field : {"containers", "initContainers"})
    if (spec.contains(field) && spec[field].is_array())
      for (const auto& c : spec[field])
        if (c.is_object() && c.contains("name") && c["name"].is_string() && c.contains("image") &&
            c["image"].is_string())
          out[field][c["name"].get<std::string>()] = c["image"];
  return out;
}

/// The object's metadata (nullptr when it has none, or it is not an object).
const json* metadata_of(const json& object) {
  if (!object.is_object() || !object.contains("metadata") || !object["metadata"].is_object())
    return nullptr;
  return &object["metadata"];
}

/// The resourceVersion a patch names (its precondition); nullopt (with `why_not`) when the answer has
/// none that is a string: what was read cannot be patched safely.
std::optional<std::string> resource_version(const json* md, std::string& why_not) {
  if (!md || !md->contains("resourceVersion") || !(*md)["resourceVersion"].is_string()) {
    why_not = "the API server's answer has no metadata.resourceVersion string: not patched";
    return std::nullopt;
  }
  return (*md)["resourceVersion"].get<std::string>();
}

/// Reads one of our annotations into `into` (left as it is when absent): the JSON object
/// {"containers": {"NAME": "IMAGE"}, "initContainers": {...}} the switch writes. False when it is
/// something else.
bool read_images_annotation(const json* md, const char* name, json& into) {
  if (!md || !md->contains("annotations") || !(*md)["annotations"].is_object() || !(*md)["annotations"].contains(name))
    return true;
  const json& v = (*md)["annotations"][name];
  if (!v.is_string())
    return false;
  try {
    into = util::parse_json(v.get<std::string>());
  } catch (const json::exception&) {
    return false;
  }
  if (!into.is_object())
    return false;
  for (const auto& [field, cs] : into.items()) {
    if (!cs.is_object())
      return false;
    for (const auto& [container, image] : cs.items())
      if (!image.is_string())
        return false;
  }
  return true;
}

bool has_annotation(const json* md, const char* name) {
  return md && md->contains("annotations") && (*md)["annotations"].is_object() && (*md)["annotations"].contains(name);
}

/// {"spec": {"template": {"spec": X}}} for the kind's pod spec path.
json at_pod_spec(const kube::KindInfo& kind, json pod_spec_patch) {
  json out = std::move(pod_spec_patch);
  for (auto it = kind.pod_spec.rbegin(); it != kind.pod_spec.rend(); ++it)
    out = json{{*it, out}};
  return out;
}

/// Sends `make_patch(object)` for a fresh read of the object, again after a 409 (up to 3 times).
/// make_patch returns nullopt (with `why` set) to give up on what it read.
http::Result<json> patch_with_retry(kube::Client& kube, const kube::KindInfo& kind, const std::string& ns,
                                    const std::string& name, bool dry_run,
                                    const std::function<std::optional<json>(const json&, std::string&)>& make_patch,
                                    std::string& why, int& conflicts) {
  for (int attempt = 0;; ++attempt) {
    auto object = kube::get_object(kube, kind, ns, name);
    if (!object)
      return object.error();
    std::optional<json> patch;
    try {
      patch = make_patch(*object, why);
    } catch (const json::exception& e) {
      // A field of another type than Kubernetes gives it: this object fails, not the run.
      return http::make_error(http::ErrorKind::invalid,
                              std::string("the API server's answer is not the object it should be: ") + e.what());
    }
    if (!patch)
      return http::make_error(http::ErrorKind::invalid, why);
    if (patch->empty())
      return *object; // nothing to change
    auto patched = kube::patch_object(kube, kind, ns, name, *patch, dry_run);
    if (patched || patched.error().status != 409 || attempt == 2)
      return patched;
    ++conflicts; // someone wrote the object between our read and our patch: read it again
  }
}

} // namespace

CutoverResult switch_workloads(const ClusterCheck& check, kube::Client& kube, const SwitchOptions& options,
                               const std::function<void(const std::string&)>& print) {
  CutoverResult result;
  auto say = [&](const std::string& line) {
    result.lines.push_back(line);
    print(line);
  };
  struct Waiting {
    const kube::KindInfo* kind;
    std::string ns, name;
  };
  std::vector<Waiting> batch;
  bool stopped = false;
  std::string stop_reason;
  std::string undo_hint; // the rollback of the workload whose rollout stopped the run

  auto wait_batch = [&]() -> bool {
    auto deadline = std::chrono::steady_clock::now() + options.rollout_timeout;
    for (const auto& w : batch) {
      std::string id = w.kind->kind + " " + w.ns + "/" + w.name;
      undo_hint = "image-migrator rollback -n " + w.ns + " --workload " + http::to_lower(w.kind->kind) + "/" + w.name;
      if (batch.size() > 1)
        undo_hint += " (its batch switched " + std::to_string(batch.size() - 1) + " other workload(s): the ROLLED OUT and "
                     "SWITCHED lines above)";
      while (true) {
        auto object = kube::get_object(kube, *w.kind, w.ns, w.name);
        if (!object) {
          stop_reason = "cannot follow the rollout of " + id + ": " + object.error().message;
          return false;
        }
        auto state = kube::rollout_state(*object, *w.kind);
        if (state.failed) {
          stop_reason = "the rollout of " + id + " failed: " + state.message;
          return false;
        }
        if (state.done) {
          say("ROLLED OUT " + id + (state.message.empty() ? "" : " (" + util::escape_control(state.message) + ")"));
          break;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
          stop_reason = "the rollout of " + id + " did not finish within " +
                        std::to_string(options.rollout_timeout.count()) + " s: " + state.message;
          return false;
        }
        std::this_thread::sleep_for(options.poll);
      }
    }
    batch.clear();
    return true;
  };

  for (const auto& w : check.workloads) {
    const std::string id = w.id();
    if (stopped) {
      say("NOT STARTED " + id + " (stopped: " + util::escape_control(stop_reason) + ")");
      ++result.failed;
      continue;
    }
    const auto status = w.status();
    if (status == WorkloadCheck::Status::not_mapped) {
      // images.json leaves all of its images where they are: nothing to switch, nothing wrong.
      say("NOT MAPPED " + id + " (not in images.json: stays where it is)");
      ++result.not_mapped;
      continue;
    }
    auto staying = w.staying();
    const std::string stays =
        staying.empty() ? "" : " (stays where it is, not in images.json: " + util::escape_control(util::join(staying, ", ")) + ")";
    const kube::KindInfo* kind = kube::kind_info(w.kind);
    // What would change, container by container.
    std::map<std::string, std::map<std::string, std::string>> change; // field -> container -> (from) image
    std::map<std::string, std::map<std::string, std::string>> to;
    std::vector<std::string> manual;
    for (const auto& c : w.containers) {
      if (c.target.empty() || c.target_digest.empty())
        continue;
      std::string wanted = c.target;
      if (options.pin_digests) {
        wanted = c.target.substr(0, c.target.find('@'));
        auto slash = wanted.rfind('/'), colon = wanted.rfind(':');
        if (colon != std::string::npos && (slash == std::string::npos || colon > slash))
          wanted = wanted.substr(0, colon);
        wanted += "@" + c.target_digest;
      }
      if (c.container_type == "env") {
        manual.push_back(c.container + " " + c.env_name + ": left to the operator (point its configuration at " +
                         wanted + ")");
        continue;
      }
      if (c.container_type != "container" && c.container_type != "initContainer") {
        manual.push_back(c.container_type + " " + c.container + ": " + c.image + " -> " + wanted + " (edit the manifest)");
        continue;
      }
      if (wanted == c.image)
        continue;
      std::string field = c.container_type == "container" ? "containers" : "initContainers";
      change[field][c.container] = c.image;
      to[field][c.container] = wanted;
    }
    if (!kind || !patchable(w.kind)) {
      std::string why = w.kind == "Job"           ? "a Job's pod template is immutable: recreate it with the new images"
                        : w.kind == "PodTemplate" ? "edit it"
                                                  : "a custom resource: change it where it is defined";
      if (!change.empty() || !manual.empty()) {
        std::vector<std::string> what;
        for (const auto& [field, cs] : to)
          for (const auto& [c, image] : cs)
            what.push_back(c + "=" + image);
        for (const auto& m : manual)
          what.push_back(m);
        say("MANUAL     " + id + ": " + why + ": " + util::escape_control(util::join(what, "; ")));
        ++result.manual;
      }
      continue;
    }
    for (const auto& m : manual)
      say("MANUAL     " + id + ": " + util::escape_control(m));
    if (!manual.empty())
      ++result.manual;
    if (status == WorkloadCheck::Status::not_ready && !options.force) {
      std::vector<std::string> reasons;
      for (const auto& c : w.containers)
        for (const auto& p : c.problems)
          reasons.push_back(c.container + ": " + p);
      say("REFUSED    " + id + ": NOT READY (" + util::escape_control(util::join(reasons, "; ")) +
          "); fix it, or --force");
      ++result.failed;
      continue;
    }
    if (status == WorkloadCheck::Status::cannot_check && !options.force) {
      // Nothing wrong was found, but nothing was proven either: a permission to grant, not an image to fix.
      say("CANNOT CHECK " + id + ": no permission to " + util::escape_control(util::join(w.cannot_check, ", ")) +
          " (the RBAC the cutover needs: manifests/cutover/, docs/KUBERNETES.md); not switched");
      ++result.failed;
      continue;
    }
    if (change.empty()) {
      say("UNCHANGED  " + id + " (already on its targets)" + stays);
      ++result.unchanged;
      continue;
    }
    std::string why;
    int conflicts = 0;
    auto make_patch = [&](const json& object, std::string& why_not) -> std::optional<json> {
      const json* spec = kube::pod_spec_of(object, *kind);
      if (!spec) {
        why_not = "it has no pod spec";
        return std::nullopt;
      }
      const json* md = metadata_of(object);
      auto resource = resource_version(md, why_not);
      if (!resource)
        return std::nullopt;
      json current = images_by_field(*spec);
      json containers_patch = json::object();
      // The images it had before an earlier (partial) switch, and what that switch set.
      json original = json::object(), switched = json::object();
      for (auto [name, into] : {std::pair{kube::original_images_annotation, &original},
                                std::pair{kube::switched_images_annotation, &switched}})
        if (!read_images_annotation(md, name, *into)) {
          why_not = std::string("its annotation ") + name +
                    " is damaged (not the JSON object rewrite --apply writes): fix or remove it first";
          return std::nullopt;
        }
      for (const auto& [field, cs] : change)
        for (const auto& [container, from] : cs) {
          std::string now = current.contains(field) && current[field].contains(container)
                                ? current[field][container].get<std::string>()
                                : "";
          const std::string& wanted = to[field][container];
          if (now == wanted)
            continue; // already switched (a retry after a partial run)
          if (now != from) {
            why_not = "its " + field.substr(0, field.size() - 1) + " " + container + " is " + now +
                      " now, not the " + from + " that was checked: run it again";
            return std::nullopt;
          }
          // An earlier switch's original is kept only when that switch set what the container
          // runs now; any other entry (stale, or planted) gives way to the image it really has.
          bool recorded = original.contains(field) && original[field].contains(container) &&
                          switched.contains(field) && switched[field].contains(container) &&
                          switched[field][container] == now;
          if (!recorded)
            original[field][container] = from;
          switched[field][container] = wanted;
          json c = {{"name", container}, {"image", wanted}};
          containers_patch[field].push_back(c);
        }
      if (containers_patch.empty())
        return json::object();
      json patch = at_pod_spec(*kind, containers_patch);
      patch["metadata"] = {{"resourceVersion", *resource},
                           {"annotations",
                            {{kube::original_images_annotation, original.dump()},
                             {kube::switched_images_annotation, switched.dump()},
                             {kube::switched_by_annotation, options.now + " by " + options.who}}}};
      return patch;
    };
    auto patched = patch_with_retry(kube, *kind, w.ns, w.name, options.dry_run, make_patch, why, conflicts);
    std::string retried = conflicts ? " (after " + std::to_string(conflicts) + " conflict(s): read again)" : "";
    if (!patched) {
      say("FAILED     " + id + ": " + util::escape_control(patched.error().message) + retried);
      ++result.failed;
      continue;
    }
    std::vector<std::string> what;
    for (const auto& [field, cs] : to)
      for (const auto& [c, image] : cs)
        what.push_back(c + "=" + image);
    if (options.dry_run) {
      say("WOULD SWITCH " + id + ": " + util::escape_control(util::join(what, " ")) + " (checked by the API server, dryRun=All)" +
          stays);
      ++result.changed;
      continue;
    }
    say("SWITCHED   " + id + ": " + util::escape_control(util::join(what, " ")) + retried + stays);
    ++result.changed;
    batch.push_back({kind, w.ns, w.name});
    if (options.batch > 0 && batch.size() >= options.batch && !wait_batch()) {
      say("STOPPED: " + util::escape_control(stop_reason) + "; undo it with: " + undo_hint);
      stopped = true;
      ++result.failed;
    }
  }
  if (!stopped && options.batch > 0 && !batch.empty() && !wait_batch()) {
    say("STOPPED: " + util::escape_control(stop_reason) + "; undo it with: " + undo_hint);
    ++result.failed;
  }
  return result;
}

CutoverResult roll_back(const kube::Inventory& inventory, kube::Client& kube, const RollbackOptions& options,
                        const std::function<void(const std::string&)>& print) {
  CutoverResult result;
  auto say = [&](const std::string& line) {
    result.lines.push_back(line);
    print(line);
  };
  std::vector<kube::SwitchedObject> objects;
  for (const auto& s : inventory.switched)
    if (!s.owned && (options.kind.empty() ||
        (kube::kind_info(options.kind) && kube::kind_info(options.kind)->kind == s.kind && s.name == options.name &&
         (options.ns.empty() || s.ns == options.ns))))
      objects.push_back(s); // not a controller's copy (a ReplicaSet of a switched Deployment): its owner is restored
  if (!options.kind.empty() && objects.empty()) {
    say("NOTHING    " + options.kind + " " + options.ns + "/" + options.name + ": no " + kube::original_images_annotation +
        " annotation (not switched by rewrite --apply, or already rolled back)");
    ++result.unchanged;
    return result;
  }
  std::sort(objects.begin(), objects.end(), [](const auto& a, const auto& b) {
    return std::tie(a.ns, a.kind, a.name) < std::tie(b.ns, b.kind, b.name);
  });
  for (const auto& o : objects) {
    std::string id = o.kind + " " + o.ns + "/" + o.name;
    const kube::KindInfo* kind = kube::kind_info(o.kind);
    if (!kind || !patchable(o.kind)) {
      say("MANUAL     " + id + ": carries " + kube::original_images_annotation + ", but rollback changes only the kinds "
                                                                                  "rewrite --apply switches");
      ++result.manual;
      continue;
    }
    std::string why;
    int conflicts = 0;
    std::vector<std::string> restored;
    auto make_patch = [&](const json& object, std::string& why_not) -> std::optional<json> {
      restored.clear();
      const json* spec = kube::pod_spec_of(object, *kind);
      const json* md = metadata_of(object);
      if (!has_annotation(md, kube::original_images_annotation)) {
        why_not = "";
        return json::object(); // rolled back meanwhile
      }
      json original = json::object(), switched = json::object();
      if (!read_images_annotation(md, kube::original_images_annotation, original)) {
        why_not = std::string("its annotation ") + kube::original_images_annotation +
                  " is damaged (not the JSON object the switch wrote)";
        return std::nullopt;
      }
      if (!has_annotation(md, kube::switched_images_annotation)) {
        why_not = std::string("its annotation ") + kube::switched_images_annotation +
                  " is missing: cannot tell whether someone changed the images since the switch; restore them by "
                  "hand from " + kube::original_images_annotation + " (" + original.dump() + ")";
        return std::nullopt;
      }
      if (!read_images_annotation(md, kube::switched_images_annotation, switched)) {
        why_not = std::string("its annotation ") + kube::switched_images_annotation +
                  " is damaged (not the JSON object the switch wrote)";
        return std::nullopt;
      }
      if (!spec) {
        why_not = "it has no pod spec";
        return std::nullopt;
      }
      auto resource = resource_version(md, why_not);
      if (!resource)
        return std::nullopt;
      json current = images_by_field(*spec);
      json containers_patch = json::object();
      std::vector<std::string> changed_since, unusable;
      // Only what a switch can have set: an image of a container the spec has now, recorded as an
      // image reference both ways. Anything else is not restored (nor added) but refused.
      for (const auto& [field, cs] : original.items()) {
        if (field != "containers" && field != "initContainers") {
          unusable.push_back("it names " + field + ", which rewrite --apply never switches");
          continue;
        }
        for (const auto& [container, from_json] : cs.items()) {
          const std::string from = from_json.get<std::string>();
          std::optional<std::string> now, set;
          if (current.contains(field) && current[field].contains(container))
            now = current[field][container].get<std::string>();
          if (switched.contains(field) && switched[field].contains(container))
            set = switched[field][container].get<std::string>();
          std::string what = field.substr(0, field.size() - 1) + " " + container;
          if (!registry::Reference::parse_normalized(from)) {
            unusable.push_back("the original image recorded for " + what + " is not an image reference");
            continue;
          }
          if (!set || !registry::Reference::parse_normalized(*set)) {
            unusable.push_back("no image reference recorded as what the switch set for " + what);
            continue;
          }
          if (!now) {
            changed_since.push_back(what + " is not in the spec any more");
            continue;
          }
          if (*now == from)
            continue; // already the original
          if (*now != *set) {
            changed_since.push_back(container + " is " + *now + " (the switch set " + *set + ")");
            continue;
          }
          containers_patch[field].push_back({{"name", container}, {"image", from}});
          restored.push_back(container + "=" + from);
        }
      }
      if (!unusable.empty()) {
        why_not = "its image-migrator annotations do not describe a switch of this object: " + util::join(unusable, "; ") +
                  "; nothing restored";
        return std::nullopt;
      }
      if (!changed_since.empty()) {
        const json& a = (*md)["annotations"];
        std::string when = a.contains(kube::switched_by_annotation) && a[kube::switched_by_annotation].is_string()
                               ? a[kube::switched_by_annotation].get<std::string>()
                               : "?";
        why_not = "changed since the switch (" + when + "): " + util::join(changed_since, "; ") +
                  "; nothing restored: set the images by hand";
        return std::nullopt;
      }
      json patch = containers_patch.empty() ? json::object() : at_pod_spec(*kind, containers_patch);
      patch["metadata"] = {{"resourceVersion", *resource},
                           {"annotations",
                            {{kube::original_images_annotation, nullptr},
                             {kube::switched_images_annotation, nullptr},
                             {kube::switched_by_annotation, nullptr}}}};
      return patch;
    };
    auto patched = patch_with_retry(kube, *kind, o.ns, o.name, options.dry_run, make_patch, why, conflicts);
    std::string retried = conflicts ? " (after " + std::to_string(conflicts) + " conflict(s): read again)" : "";
    if (!patched) {
      bool refused = patched.error().kind == http::ErrorKind::invalid;
      // What ends it: the annotations removed by hand once the images are what they should be.
      std::string give_up = refused ? "; when the images are right, remove the annotations: kubectl -n " + o.ns +
                                          " annotate " + http::to_lower(kind->kind) + " " + o.name + " " +
                                          kube::original_images_annotation + "- " + kube::switched_images_annotation +
                                          "- " + kube::switched_by_annotation + "-"
                                    : "";
      say((refused ? "REFUSED    " : "FAILED     ") + id + ": " + util::escape_control(patched.error().message) + retried +
          give_up);
      ++result.failed;
      continue;
    }
    if (options.dry_run) {
      say("WOULD RESTORE " + id + ": " + util::escape_control(util::join(restored, " ")) + " (checked by the API server, dryRun=All)");
    } else {
      say("RESTORED   " + id + ": " + util::escape_control(util::join(restored, " ")) +
          (restored.empty() ? "(images already the original ones; annotations removed)" : "") + retried);
    }
    ++result.changed;
  }
  return result;
}

} // namespace migrate
