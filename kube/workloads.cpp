#include "kube/workloads.hpp"

#include "http/url.hpp"
#include "util/json.hpp"
#include "util/text.hpp"

#include <algorithm>

namespace kube {

namespace {

using nlohmann::json;

const json* at(const json& j, const std::vector<std::string>& keys) {
  const json* cur = &j;
  for (const auto& k : keys) {
    if (!cur->is_object() || !cur->contains(k))
      return nullptr;
    cur = &(*cur)[k];
  }
  return cur;
}

long long number(const json& j, const std::vector<std::string>& keys, long long fallback = 0) {
  const json* v = at(j, keys);
  return v && v->is_number_integer() ? v->get<long long>() : fallback;
}

std::string text(const json& j, const std::vector<std::string>& keys) {
  const json* v = at(j, keys);
  return v && v->is_string() ? v->get<std::string>() : "";
}

std::string prefix(const std::string& group_version) {
  return group_version == "v1" ? "/api/v1" : "/apis/" + group_version;
}

http::Error api_error(const std::string& what, const http::Response& r) {
  auto kind = r.status == 404                     ? http::ErrorKind::not_found
              : r.status == 401 || r.status == 403 ? http::ErrorKind::unauthorized
                                                   : http::ErrorKind::http_status;
  return http::make_error(kind, what + ": HTTP " + std::to_string(r.status) + " " + status_message(r), r.status);
}

Result<json> parse(const std::string& what, const http::Response& r) {
  try {
    auto j = util::parse_json(r.body);
    if (!j.is_object())
      return http::make_error(http::ErrorKind::invalid, what + ": the answer is not an object");
    return j;
  } catch (const json::exception&) {
    return http::make_error(http::ErrorKind::invalid, what + ": the answer is not JSON");
  }
}

} // namespace

const KindInfo* kind_info(const std::string& kind) {
  static const std::vector<std::pair<std::vector<std::string>, KindInfo>> kinds = {
      {{"pod", "pods", "po"}, {"Pod", "v1", "pods", {"spec"}}},
      {{"replicationcontroller", "replicationcontrollers", "rc"},
       {"ReplicationController", "v1", "replicationcontrollers", {"spec", "template", "spec"}}},
      {{"podtemplate", "podtemplates"}, {"PodTemplate", "v1", "podtemplates", {"template", "spec"}}},
      {{"deployment", "deployments", "deploy"}, {"Deployment", "apps/v1", "deployments", {"spec", "template", "spec"}}},
      {{"statefulset", "statefulsets", "sts"}, {"StatefulSet", "apps/v1", "statefulsets", {"spec", "template", "spec"}}},
      {{"daemonset", "daemonsets", "ds"}, {"DaemonSet", "apps/v1", "daemonsets", {"spec", "template", "spec"}}},
      {{"replicaset", "replicasets", "rs"}, {"ReplicaSet", "apps/v1", "replicasets", {"spec", "template", "spec"}}},
      {{"job", "jobs"}, {"Job", "batch/v1", "jobs", {"spec", "template", "spec"}}},
      {{"cronjob", "cronjobs", "cj"},
       {"CronJob", "batch/v1", "cronjobs", {"spec", "jobTemplate", "spec", "template", "spec"}}},
  };
  std::string lower = http::to_lower(kind);
  for (const auto& [names, info] : kinds)
    if (info.kind == kind || std::find(names.begin(), names.end(), lower) != names.end())
      return &info;
  // kubectl's fully qualified forms: "deployment.apps", "deployments.v1.apps" (not for the core group).
  if (auto dot = lower.find('.'); dot != std::string::npos) {
    const KindInfo* info = kind_info(lower.substr(0, dot));
    if (!info || info->group_version.find('/') == std::string::npos)
      return nullptr;
    std::string group = info->group_version.substr(0, info->group_version.find('/'));
    std::string version = info->group_version.substr(info->group_version.find('/') + 1);
    std::string rest = lower.substr(dot + 1);
    return rest == group || rest == version + "." + group ? info : nullptr;
  }
  return nullptr;
}

std::string suggest_kind(const std::string& kind) {
  static const std::vector<std::string> names = {
      "pod",         "pods",         "replicationcontroller", "replicationcontrollers", "podtemplate",
      "podtemplates", "deployment",  "deployments",           "statefulset",            "statefulsets",
      "daemonset",   "daemonsets",   "replicaset",            "replicasets",            "job",
      "jobs",        "cronjob",      "cronjobs"};
  return util::closest_word(http::to_lower(kind.substr(0, 64)), names);
}

std::string object_path(const KindInfo& kind, const std::string& ns, const std::string& name) {
  return prefix(kind.group_version) + "/namespaces/" + http::url_encode(ns) + "/" + kind.plural + "/" +
         http::url_encode(name);
}

const json* pod_spec_of(const json& object, const KindInfo& kind) {
  const json* spec = at(object, kind.pod_spec);
  return spec && spec->is_object() ? spec : nullptr;
}

Result<json> get_object(Client& client, const KindInfo& kind, const std::string& ns, const std::string& name) {
  std::string what = "reading " + kind.kind + " " + ns + "/" + name;
  auto resp = client.get(object_path(kind, ns, name));
  if (!resp)
    return resp.error().context(what);
  if (resp->status != 200)
    return api_error(what, *resp);
  return parse(what, *resp);
}

Result<json> patch_object(Client& client, const KindInfo& kind, const std::string& ns, const std::string& name,
                          const json& patch, bool dry_run) {
  std::string what = std::string(dry_run ? "checking a patch of " : "patching ") + kind.kind + " " + ns + "/" + name;
  std::string path = object_path(kind, ns, name) + "?fieldManager=image-migrator" + (dry_run ? "&dryRun=All" : "");
  auto resp = client.send("PATCH", path, patch.dump(), "application/strategic-merge-patch+json");
  if (!resp)
    return resp.error().context(what);
  if (resp->status != 200 && resp->status != 201)
    return api_error(what, *resp);
  return parse(what, *resp);
}

Result<std::vector<NodePlatform>> list_nodes(Client& client) {
  std::vector<NodePlatform> out;
  std::string cont;
  for (int page = 0; page < 1000; ++page) {
    std::string url = "/api/v1/nodes?limit=500" + (cont.empty() ? "" : "&continue=" + http::url_encode(cont));
    auto resp = client.get(url);
    if (!resp)
      return resp.error().context("listing nodes");
    if (resp->status != 200)
      return api_error("listing nodes", *resp);
    auto j = parse("listing nodes", *resp);
    if (!j)
      return j.error();
    if (j->contains("items") && (*j)["items"].is_array())
      for (const auto& n : (*j)["items"]) {
        NodePlatform p;
        p.name = text(n, {"metadata", "name"});
        p.os = text(n, {"status", "nodeInfo", "operatingSystem"});
        p.architecture = text(n, {"status", "nodeInfo", "architecture"});
        if (p.os.empty())
          p.os = text(n, {"metadata", "labels", "kubernetes.io/os"});
        if (p.architecture.empty())
          p.architecture = text(n, {"metadata", "labels", "kubernetes.io/arch"});
        // The platform goes into messages, the summary and comparisons: what is not a platform
        // name ("linux", "arm64", "amd64") is reported, escaped, and not used.
        auto platform_name = [](const std::string& v) {
          return !v.empty() && v.size() <= 64 &&
                 v.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_.-") == std::string::npos;
        };
        if (!platform_name(p.os) || !platform_name(p.architecture)) {
          p.problem = "node " + util::escape_control(p.name.substr(0, 253)) + ": its platform \"" +
                      util::escape_control(p.os.substr(0, 100)) + "/" + util::escape_control(p.architecture.substr(0, 100)) +
                      "\" is not an os/architecture name; not used";
          p.os.clear();
          p.architecture.clear();
        }
        out.push_back(std::move(p));
      }
    cont = text(*j, {"metadata", "continue"});
    if (cont.empty())
      return out;
  }
  return http::make_error(http::ErrorKind::invalid, "listing nodes: the pages do not end");
}

Result<std::vector<std::string>> service_account_pull_secrets(Client& client, const std::string& ns,
                                                              const std::string& name) {
  std::string what = "reading service account " + ns + "/" + name;
  auto resp = client.get("/api/v1/namespaces/" + http::url_encode(ns) + "/serviceaccounts/" + http::url_encode(name));
  if (!resp)
    return resp.error().context(what);
  if (resp->status == 404)
    return std::vector<std::string>{};
  if (resp->status != 200)
    return api_error(what, *resp);
  auto j = parse(what, *resp);
  if (!j)
    return j.error();
  std::vector<std::string> out;
  if (j->contains("imagePullSecrets") && (*j)["imagePullSecrets"].is_array())
    for (const auto& s : (*j)["imagePullSecrets"])
      if (auto n = text(s, {"name"}); !n.empty())
        out.push_back(n);
  return out;
}

RolloutState rollout_state(const json& o, const KindInfo& kind) {
  RolloutState s;
  long long generation = number(o, {"metadata", "generation"});
  long long observed = number(o, {"status", "observedGeneration"});
  auto waiting = [&](std::string m) {
    s.message = std::move(m);
    return s;
  };
  if (kind.kind == "Deployment") {
    if (observed < generation)
      return waiting("waiting for the deployment spec update to be observed");
    if (const json* conds = at(o, {"status", "conditions"}); conds && conds->is_array())
      for (const auto& c : *conds)
        if (text(c, {"type"}) == "Progressing" && text(c, {"reason"}) == "ProgressDeadlineExceeded") {
          s.failed = true;
          s.message = "exceeded its progress deadline";
          return s;
        }
    long long want = number(o, {"spec", "replicas"}, 1);
    long long updated = number(o, {"status", "updatedReplicas"});
    long long replicas = number(o, {"status", "replicas"});
    long long available = number(o, {"status", "availableReplicas"});
    if (updated < want)
      return waiting(std::to_string(updated) + " of " + std::to_string(want) + " new replicas updated");
    if (replicas > updated)
      return waiting(std::to_string(replicas - updated) + " old replicas pending termination");
    if (available < updated)
      return waiting(std::to_string(available) + " of " + std::to_string(updated) + " updated replicas available");
    s.done = true;
    return s;
  }
  if (kind.kind == "StatefulSet") {
    if (text(o, {"spec", "updateStrategy", "type"}) == "OnDelete") {
      s.done = true;
      s.message = "updateStrategy OnDelete: pods take the new image when they are deleted";
      return s;
    }
    if (observed == 0 || observed < generation)
      return waiting("waiting for the statefulset spec update to be observed");
    long long want = number(o, {"spec", "replicas"}, 1);
    long long ready = number(o, {"status", "readyReplicas"});
    if (ready < want)
      return waiting(std::to_string(ready) + " of " + std::to_string(want) + " pods ready");
    if (long long partition = number(o, {"spec", "updateStrategy", "rollingUpdate", "partition"}); partition > 0) {
      if (number(o, {"status", "updatedReplicas"}) < want - partition)
        return waiting("partitioned roll out in progress");
    } else if (text(o, {"status", "updateRevision"}) != text(o, {"status", "currentRevision"})) {
      return waiting(std::to_string(number(o, {"status", "updatedReplicas"})) + " of " + std::to_string(want) +
                     " pods updated");
    }
    s.done = true;
    return s;
  }
  if (kind.kind == "DaemonSet") {
    if (text(o, {"spec", "updateStrategy", "type"}) == "OnDelete") {
      s.done = true;
      s.message = "updateStrategy OnDelete: pods take the new image when they are deleted";
      return s;
    }
    if (observed < generation)
      return waiting("waiting for the daemon set spec update to be observed");
    long long desired = number(o, {"status", "desiredNumberScheduled"});
    long long updated = number(o, {"status", "updatedNumberScheduled"});
    long long available = number(o, {"status", "numberAvailable"});
    if (updated < desired)
      return waiting(std::to_string(updated) + " of " + std::to_string(desired) + " updated pods scheduled");
    if (available < desired)
      return waiting(std::to_string(available) + " of " + std::to_string(desired) + " updated pods available");
    s.done = true;
    return s;
  }
  if (kind.kind == "Pod") {
    const json* spec = at(o, {"spec", "containers"});
    const json* statuses = at(o, {"status", "containerStatuses"});
    if (!spec || !spec->is_array())
      return (s.done = true, s);
    for (const auto& c : *spec) {
      std::string name = text(c, {"name"}), image = text(c, {"image"});
      const json* st = nullptr;
      if (statuses && statuses->is_array())
        for (const auto& cs : *statuses)
          if (text(cs, {"name"}) == name)
            st = &cs;
      if (!st)
        return waiting("container " + name + " has no status yet");
      std::string reason = text(*st, {"state", "waiting", "reason"});
      if (reason == "ImagePullBackOff" || reason == "ErrImagePull" || reason == "InvalidImageName") {
        s.failed = true;
        s.message = "container " + name + ": " + reason;
        return s;
      }
      // The kubelet reports the image it runs; until it took the new one, the old one is running.
      std::string running = text(*st, {"image"});
      if (running != image && !image.empty() && running.find(image.substr(image.find_last_of('/') + 1)) == std::string::npos)
        return waiting("container " + name + " still runs " + running);
      const json* ready = at(*st, {"ready"});
      if (!ready || !ready->is_boolean() || !ready->get<bool>())
        return waiting("container " + name + " is not ready");
    }
    s.done = true;
    return s;
  }
  s.done = true; // CronJob (the next run), ReplicaSet/ReplicationController without owner (new pods only)
  return s;
}

} // namespace kube
