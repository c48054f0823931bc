#include "kube/discovery.hpp"

#include "http/base64.hpp"
#include "http/url.hpp"
#include "util/json.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>
#include <future>
#include <mutex>
#include <set>

namespace kube {

namespace {

using nlohmann::json;

struct Resource {
  std::string kind;
  std::string group_version; ///< "v1", "apps/v1", "batch/v1"
  std::string plural;
  std::string fallback_version; ///< tried when group_version does not serve it
};

const std::vector<Resource>& resources() {
  static const std::vector<Resource> r = {
      {"Pod", "v1", "pods", ""},
      {"ReplicationController", "v1", "replicationcontrollers", ""},
      {"PodTemplate", "v1", "podtemplates", ""},
      {"Deployment", "apps/v1", "deployments", ""},
      {"StatefulSet", "apps/v1", "statefulsets", ""},
      {"DaemonSet", "apps/v1", "daemonsets", ""},
      {"ReplicaSet", "apps/v1", "replicasets", ""},
      {"Job", "batch/v1", "jobs", ""},
      {"CronJob", "batch/v1", "cronjobs", "batch/v1beta1"},
  };
  return r;
}

std::string prefix(const std::string& group_version) {
  return group_version == "v1" ? "/api/v1" : "/apis/" + group_version;
}

const json* path(const json& j, std::initializer_list<const char*> keys) {
  const json* cur = &j;
  for (const char* k : keys) {
    if (!cur->is_object() || !cur->contains(k))
      return nullptr;
    cur = &(*cur)[k];
  }
  return cur;
}

std::string str(const json& j, const char* key) {
  if (j.is_object() && j.contains(key) && j[key].is_string())
    return j[key].get<std::string>();
  return {};
}

/// Whether the API server serves `plural` under `group_version`.
Result<bool> served(Client& client, const std::string& group_version, const std::string& plural) {
  auto resp = client.get(prefix(group_version));
  if (!resp)
    return resp.error();
  if (resp->status == 404)
    return false;
  if (resp->status != 200)
    return http::make_error(http::ErrorKind::http_status,
                            "discovering " + prefix(group_version) + ": HTTP " + std::to_string(resp->status) + " " +
                                status_message(*resp),
                            resp->status);
  try {
    auto j = util::parse_json(resp->body);
    if (j.contains("resources") && j["resources"].is_array())
      for (const auto& r : j["resources"])
        if (str(r, "name") == plural)
          return true;
  } catch (const json::exception& e) {
    return http::make_error(http::ErrorKind::invalid, "discovering " + prefix(group_version) +
                                                          ": answer is not JSON (" + util::parse_error_text(e) + ")");
  }
  return false;
}

enum class ListOutcome { ok, forbidden, not_found };

/// Lists one resource in one namespace ("" = all), page by page.
/// Lists every page of `base`, handing each item to `on_item` as its page arrives (only one page is
/// held at a time: a cluster of many thousand pods fits in a small container). A restart after an
/// expired continue token calls `on_restart` first, to drop what the earlier pages gave.
Result<ListOutcome> list_all(Client& client, const std::string& base, int page_size,
                             const std::function<void(const json&)>& on_item, const std::function<void()>& on_restart,
                             std::string& problem) {
  int restarts = 0;
  std::string cont;
  std::set<std::string> tokens; // an API server that hands out a continue token twice is looping
  for (int pages = 0;; ++pages) {
    // 100,000 pages of 500 is 50 million objects: no real cluster; a server that never ends is cut off.
    if (pages > 100000)
      return http::make_error(http::ErrorKind::invalid, "listing " + base + ": the API server's pages do not end "
                                                        "(over 100000 continue tokens)");
    if (!cont.empty() && !tokens.insert(cont).second)
      return http::make_error(http::ErrorKind::invalid, "listing " + base + ": the API server's pagination loops "
                                                        "(it gave the same continue token twice)");
    std::string url = base + "?limit=" + std::to_string(page_size);
    if (!cont.empty())
      url += "&continue=" + http::url_encode(cont);
    auto resp = client.get(url);
    if (!resp)
      return resp.error().context("listing " + base);
    if (resp->status == 410 && restarts < 3) {
      // The continue token expired (etcd compaction): start the list again.
      ++restarts;
      cont.clear();
      tokens.clear();
      on_restart();
      continue;
    }
    if (resp->status == 403) {
      problem = status_message(*resp);
      return ListOutcome::forbidden;
    }
    if (resp->status == 404) {
      problem = "not served by this API server";
      return ListOutcome::not_found;
    }
    if (resp->status == 401)
      return http::make_error(http::ErrorKind::unauthorized,
                              "listing " + base + ": HTTP 401 " + status_message(*resp) + " (check the credentials of " +
                                  client.config().source + ")",
                              401);
    if (resp->status != 200)
      return http::make_error(http::ErrorKind::http_status,
                              "listing " + base + ": HTTP " + std::to_string(resp->status) + " " + status_message(*resp),
                              resp->status);
    try {
      auto j = util::parse_json(resp->body);
      if (j.contains("items") && j["items"].is_array())
        for (const auto& item : j["items"])
          on_item(item);
      cont = j.contains("metadata") ? str(j["metadata"], "continue") : "";
    } catch (const json::exception& e) {
      return http::make_error(http::ErrorKind::invalid,
                              "listing " + base + ": answer is not JSON (" + util::parse_error_text(e) + ")");
    }
    if (cont.empty())
      break;
  }
  return ListOutcome::ok;
}

void add_containers(const json& spec, const json& object, const std::string& kind, Inventory& out) {
  const json& meta = object.contains("metadata") ? object["metadata"] : json::object();
  std::vector<std::string> secrets;
  if (spec.contains("imagePullSecrets") && spec["imagePullSecrets"].is_array())
    for (const auto& s : spec["imagePullSecrets"])
      if (auto name = str(s, "name"); !name.empty())
        secrets.push_back(name);
  auto add = [&](const std::string& image, const std::string& container, const char* type) {
    if (image.empty())
      return;
    ImageUse u;
    u.image = image;
    u.kind = kind;
    u.ns = str(meta, "namespace");
    u.name = str(meta, "name");
    u.container = container;
    u.container_type = type;
    u.pull_secrets = secrets;
    u.owned = meta.contains("ownerReferences") && meta["ownerReferences"].is_array() && !meta["ownerReferences"].empty();
    out.uses.push_back(std::move(u));
  };
  for (auto [field, type] : {std::pair{"containers", "container"}, std::pair{"initContainers", "initContainer"},
                             std::pair{"ephemeralContainers", "ephemeralContainer"}}) {
    if (spec.contains(field) && spec[field].is_array())
      for (const auto& c : spec[field])
        add(str(c, "image"), str(c, "name"), type);
  }
  if (spec.contains("volumes") && spec["volumes"].is_array())
    for (const auto& v : spec["volumes"])
      if (const json* ref = path(v, {"image", "reference"}); ref && ref->is_string())
        add(ref->get<std::string>(), str(v, "name"), "imageVolume");
}

} // namespace

Result<nlohmann::json> pull_secret_auths(Client& client, const std::string& ns, const std::string& name) {
  std::string what = "reading image pull secret " + ns + "/" + name;
  auto resp = client.get("/api/v1/namespaces/" + http::url_encode(ns) + "/secrets/" + http::url_encode(name));
  if (!resp)
    return resp.error().context(what);
  if (resp->status != 200)
    return http::make_error(resp->status == 403 ? http::ErrorKind::unauthorized : http::ErrorKind::http_status,
                            what + ": HTTP " + std::to_string(resp->status) + " " + status_message(*resp), resp->status);
  try {
    auto j = util::parse_json(resp->body);
    const json* data = path(j, {"data"});
    std::string type = str(j, "type");
    const char* field = type == "kubernetes.io/dockercfg" ? ".dockercfg" : ".dockerconfigjson";
    if (!data || !data->contains(field) || !(*data)[field].is_string())
      return http::make_error(http::ErrorKind::invalid, what + ": not a docker-registry secret (type " + type + ")");
    auto decoded = http::base64_decode((*data)[field].get<std::string>());
    if (!decoded)
      return http::make_error(http::ErrorKind::invalid, what + ": " + field + " is not base64");
    auto config = util::parse_json(*decoded);
    if (config.contains("auths") && config["auths"].is_object())
      return config["auths"];
    return config; // .dockercfg: the auths object itself
  } catch (const json::exception&) {
    return http::make_error(http::ErrorKind::invalid, what + ": not valid JSON"); // never echo secret data
  }
}

bool valid_namespace_name(const std::string& name) {
  if (name.empty() || name.size() > 63 || name.front() == '-' || name.back() == '-')
    return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}

std::string digest_from_image_id(const std::string& image_id) {
  auto at = image_id.rfind('@');
  if (at == std::string::npos)
    return {};
  return image_id.substr(at + 1);
}

void collect_images(const json& object, const std::string& kind, Inventory& out) {
  const json* spec = nullptr;
  if (kind == "Pod")
    spec = path(object, {"spec"});
  else if (kind == "PodTemplate")
    spec = path(object, {"template", "spec"});
  else if (kind == "CronJob")
    spec = path(object, {"spec", "jobTemplate", "spec", "template", "spec"});
  else
    spec = path(object, {"spec", "template", "spec"});
  if (spec && spec->is_object())
    add_containers(*spec, object, kind, out);
  if (kind != "Pod" || !spec)
    return;
  // What the pod really runs, to compare digests between pods.
  std::map<std::string, std::string> spec_images;
  for (auto field : {"containers", "initContainers", "ephemeralContainers"})
    if (spec->contains(field) && (*spec)[field].is_array())
      for (const auto& c : (*spec)[field])
        spec_images[str(c, "name")] = str(c, "image");
  const json* status = path(object, {"status"});
  if (!status)
    return;
  const json& meta = object.contains("metadata") ? object["metadata"] : json::object();
  for (auto field : {"containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"}) {
    if (!status->contains(field) || !(*status)[field].is_array())
      continue;
    for (const auto& cs : (*status)[field]) {
      RunningImage r;
      r.ns = str(meta, "namespace");
      r.pod = str(meta, "name");
      r.container = str(cs, "name");
      r.spec_image = spec_images.count(r.container) ? spec_images[r.container] : str(cs, "image");
      r.status_image = str(cs, "image");
      r.image_id = str(cs, "imageID");
      r.digest = digest_from_image_id(r.image_id);
      if (!r.image_id.empty())
        out.running.push_back(std::move(r));
    }
  }
}

Result<Inventory> discover(Client& client, const DiscoverOptions& options, std::shared_ptr<spdlog::logger> log) {
  Inventory inventory;
  std::mutex mutex;
  std::set<std::string> excluded(options.exclude_namespaces.begin(), options.exclude_namespaces.end());
  std::vector<std::string> namespaces;
  for (const auto& ns : options.namespaces)
    if (!excluded.count(ns))
      namespaces.push_back(ns);
  // A namespace given by name that does not exist lists nothing, which must not pass for "no
  // workloads there" (a typo in an audit): ask for it (get on namespaces; 403 = cannot tell).
  for (const auto& ns : namespaces) {
    auto resp = client.get("/api/v1/namespaces/" + http::url_encode(ns));
    if (!resp)
      return resp.error().context("checking namespace " + ns);
    if (resp->status == 404) {
      inventory.missing_namespaces.push_back(ns);
      log->warn("namespace {} does not exist", ns);
    } else if (resp->status == 403) {
      inventory.unchecked_namespaces.push_back(ns);
      log->debug("cannot check that namespace {} exists: {}", ns, status_message(*resp));
    } else if (resp->status == 401) {
      return http::make_error(http::ErrorKind::unauthorized,
                              "checking namespace " + ns + ": HTTP 401 " + status_message(*resp) +
                                  " (check the credentials of " + client.config().source + ")",
                              401);
    }
  }
  if (namespaces.empty() && !options.namespaces.empty())
    return inventory; // every namespace asked for is excluded
  if (namespaces.empty())
    namespaces.push_back(""); // all namespaces

  std::size_t not_served = 0; // kinds answered 404 (under the mutex)
  auto list_kind = [&](const Resource& res) -> http::Status {
    std::string gv = res.group_version;
    if (!res.fallback_version.empty()) {
      auto ok = served(client, gv, res.plural);
      if (!ok)
        return ok.error();
      if (!*ok) {
        auto fallback = served(client, res.fallback_version, res.plural);
        if (!fallback)
          return fallback.error();
        if (*fallback) {
          log->info("{} are not served by {}, using {}", res.plural, gv, res.fallback_version);
          gv = res.fallback_version;
        }
      }
    }
    Inventory part;
    std::size_t objects = 0, excluded_objects = 0;
    for (const auto& ns : namespaces) {
      std::string base = prefix(gv) + (ns.empty() ? "" : "/namespaces/" + ns) + "/" + res.plural;
      std::string problem;
      Inventory listed; // this namespace's; dropped when its list starts again
      std::size_t count = 0, skipped = 0;
      auto outcome = list_all(
          client, base, options.page_size,
          [&](const json& item) {
            // Excluded namespaces are left out of a cluster-wide list here (the API has no "not in
            // these namespaces" filter for lists).
            if (!excluded.empty() && item.is_object() && item.contains("metadata") &&
                excluded.count(str(item["metadata"], "namespace"))) {
              ++skipped;
              return;
            }
            collect_images(item, res.kind, listed);
            ++count;
          },
          [&] {
            listed = Inventory{};
            count = 0;
            skipped = 0;
          },
          problem);
      if (!outcome)
        return outcome.error();
      if (*outcome == ListOutcome::ok) {
        objects += count;
        excluded_objects += skipped;
        for (auto& u : listed.uses)
          part.uses.push_back(std::move(u));
        for (auto& r : listed.running)
          part.running.push_back(std::move(r));
      }
      if (*outcome != ListOutcome::ok) {
        std::lock_guard lock(mutex);
        inventory.warnings.push_back(res.plural + (ns.empty() ? "" : " in namespace " + ns) + ": " + problem);
        if (*outcome == ListOutcome::forbidden)
          ++inventory.forbidden;
        else
          ++not_served;
        log->warn("cannot list {}{}: {}", res.plural, ns.empty() ? "" : " in namespace " + ns, problem);
        if (*outcome == ListOutcome::not_found)
          break;
      }
    }
    std::lock_guard lock(mutex);
    inventory.objects[res.kind] += objects;
    inventory.excluded += excluded_objects;
    for (auto& u : part.uses)
      inventory.uses.push_back(std::move(u));
    for (auto& r : part.running)
      inventory.running.push_back(std::move(r));
    return {};
  };

  std::vector<std::future<http::Status>> futures;
  for (const auto& res : resources())
    futures.push_back(std::async(std::launch::async, list_kind, std::cref(res)));
  std::optional<http::Error> first;
  for (auto& f : futures) {
    auto st = f.get();
    if (!st && !first)
      first = st.error();
  }
  if (first)
    return *first;
  inventory.none_served = not_served == futures.size();
  return inventory;
}

} // namespace kube
