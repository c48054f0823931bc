// Slightly over 600 lines: listing (pages, restarts, caps), the validation of what a list returns
// (names, namespaces) and the reading of images from every workload shape belong together: a
// workload's images are only as trustworthy as the checks on the object that carries them.
#include "kube/discovery.hpp"

#include "http/base64.hpp"
#include "http/url.hpp"
#include "util/json.hpp"
#include "util/text.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <sstream>
#include <string_view>
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
  // Each page is handed on and dropped, but what the items give is kept: a list of over a million
  // objects (a real cluster's limit is some 150,000 pods) is a server flooding us, not a cluster.
  constexpr std::size_t max_objects = 1000000;
  std::size_t objects = 0;
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
      objects = 0;
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
      if (j.contains("items") && j["items"].is_array()) {
        objects += j["items"].size();
        if (objects > max_objects)
          return http::make_error(http::ErrorKind::invalid, "listing " + base + ": over " + std::to_string(max_objects) +
                                                                " objects: the API server's answers do not end");
        for (const auto& item : j["items"])
          on_item(item);
      }
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

/// Whether `name` is safe to use as a name: 1 to 253 letters, digits, '.', '_' or '-', starting with a
/// letter or digit. What the API server accepts for objects, containers, secrets and service accounts
/// (DNS-1123 names) is a subset; the test data of Kubernetes itself ("nameValue") is not, and passes.
/// Names go into API paths, kubectl commands, annotations and reports: one with white space, a slash,
/// shell text or a control byte comes from a server that is not playing fair.
bool valid_object_name(const std::string& name) {
  if (name.empty() || name.size() > 253 || !std::isalnum(static_cast<unsigned char>(name.front())))
    return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

/// An environment variable's name as Kubernetes takes it: printable ASCII without '=' or space.
bool valid_env_name(const std::string& name) {
  return !name.empty() && name.size() <= 256 &&
         std::all_of(name.begin(), name.end(), [](char c) { return c > 0x20 && c < 0x7f && c != '='; });
}

/// The operator convention (OLM): an operator's own Deployment names the images it will run in
/// RELATED_IMAGE_* variables. An audit that missed them would leave those images behind.
constexpr std::string_view related_image_prefix = "RELATED_IMAGE_";

void add_containers(const json& spec, const json& object, const std::string& kind, Inventory& out) {
  const json& meta = object.contains("metadata") ? object["metadata"] : json::object();
  std::vector<std::string> secrets;
  const std::string where = kind + " " + str(meta, "namespace") + "/" + str(meta, "name");
  if (spec.contains("imagePullSecrets") && spec["imagePullSecrets"].is_array())
    for (const auto& s : spec["imagePullSecrets"]) {
      if (auto name = str(s, "name"); valid_object_name(name)) {
        secrets.push_back(name);
      } else if (!name.empty()) {
        ++out.invalid_names;
        out.warnings.push_back(where + ": an imagePullSecrets name that cannot be one, left out: \"" +
                               util::escape_control(name.substr(0, 100)) + "\"");
      }
    }
  std::string service_account = str(spec, "serviceAccountName");
  if (service_account.empty())
    service_account = str(spec, "serviceAccount"); // the deprecated spelling, still served
  if (service_account.empty())
    service_account = "default";
  if (!valid_object_name(service_account)) {
    ++out.invalid_names;
    out.warnings.push_back(where + ": a serviceAccountName that cannot be one: \"" +
                           util::escape_control(service_account.substr(0, 100)) + "\" (read as \"default\")");
    service_account = "default";
  }
  std::map<std::string, std::string> selector;
  if (spec.contains("nodeSelector") && spec["nodeSelector"].is_object())
    for (const char* label : {"kubernetes.io/os", "kubernetes.io/arch"})
      if (auto v = str(spec["nodeSelector"], label); !v.empty())
        selector[label] = v;
  auto add = [&](const std::string& image, const std::string& container, const char* type, const std::string& env) {
    if (image.empty())
      return;
    // Container and volume names are names too (a custom resource's container may have none).
    if ((!container.empty() && !valid_object_name(container)) || (!env.empty() && !valid_env_name(env))) {
      ++out.invalid_names;
      out.warnings.push_back(where + ": a " + type + " name that cannot be one, left out: \"" +
                             util::escape_control((env.empty() ? container : env).substr(0, 100)) + "\"");
      return;
    }
    ImageUse u;
    u.image = image;
    u.kind = kind;
    u.ns = str(meta, "namespace");
    u.name = str(meta, "name");
    u.container = container;
    u.container_type = type;
    u.env_name = env;
    u.pull_secrets = secrets;
    u.service_account = service_account;
    u.node_selector = selector;
    u.owned = meta.contains("ownerReferences") && meta["ownerReferences"].is_array() && !meta["ownerReferences"].empty();
    out.uses.push_back(std::move(u));
  };
  for (auto [field, type] : {std::pair{"containers", "container"}, std::pair{"initContainers", "initContainer"},
                             std::pair{"ephemeralContainers", "ephemeralContainer"}}) {
    if (!spec.contains(field) || !spec[field].is_array())
      continue;
    for (const auto& c : spec[field]) {
      add(str(c, "image"), str(c, "name"), type, "");
      if (c.is_object() && c.contains("env") && c["env"].is_array())
        for (const auto& e : c["env"])
          if (auto name = str(e, "name"); name.starts_with(related_image_prefix))
            add(str(e, "value"), str(c, "name"), "env", name); // valueFrom: not an image written here
    }
  }
  if (spec.contains("volumes") && spec["volumes"].is_array())
    for (const auto& v : spec["volumes"])
      if (const json* ref = path(v, {"image", "reference"}); ref && ref->is_string())
        add(ref->get<std::string>(), str(v, "name"), "imageVolume", "");
}

void note_switched(const json& object, const std::string& kind, Inventory& out) {
  const json* annotations = path(object, {"metadata", "annotations"});
  if (annotations && annotations->is_object() && annotations->contains(original_images_annotation)) {
    const json* owners = path(object, {"metadata", "ownerReferences"});
    out.switched.push_back({kind, str(object["metadata"], "namespace"), str(object["metadata"], "name"),
                            owners && owners->is_array() && !owners->empty()});
  }
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

Result<ExtraResource> parse_extra_resource(const std::string& text) {
  auto fail = [&](const std::string& why) {
    return http::make_error(http::ErrorKind::invalid,
                            "--extra-resource \"" + text + "\": " + why +
                                " (GROUP/VERSION/RESOURCE=FIELD.PATH, e.g. argoproj.io/v1alpha1/rollouts=spec.template)");
  };
  auto eq = text.find('=');
  if (eq == std::string::npos)
    return fail("no =FIELD.PATH");
  std::string gvr = text.substr(0, eq), field = text.substr(eq + 1);
  std::vector<std::string> parts;
  std::stringstream ss(gvr);
  for (std::string p; std::getline(ss, p, '/');)
    parts.push_back(p);
  ExtraResource r;
  r.text = text;
  if (parts.size() == 2 || (parts.size() == 3 && parts[0] == "core")) {
    r.version = parts[parts.size() - 2];
    r.resource = parts.back();
  } else if (parts.size() == 3) {
    r.group = parts[0];
    r.version = parts[1];
    r.resource = parts[2];
  } else {
    return fail("not GROUP/VERSION/RESOURCE");
  }
  auto name_ok = [](const std::string& s, const char* extra) {
    return !s.empty() && s.size() <= 253 &&
           s.find_first_not_of(std::string("abcdefghijklmnopqrstuvwxyz0123456789-") + extra) == std::string::npos;
  };
  if ((!r.group.empty() && !name_ok(r.group, ".")) || !name_ok(r.version, "") || !name_ok(r.resource, ""))
    return fail("group, version and resource are lower-case names (the plural resource, as in kubectl api-resources)");
  std::stringstream fs(field);
  for (std::string p; std::getline(fs, p, '.');) {
    std::string bare = p.ends_with("[]") ? p.substr(0, p.size() - 2) : p;
    if (bare.empty() || bare.find_first_of("[]=/ ") != std::string::npos)
      return fail("bad field path element \"" + p + "\"");
    r.path.push_back(p);
  }
  if (r.path.empty() || r.path.size() > 16)
    return fail("the field path is empty or too long");
  return r;
}

void collect_extra_images(const json& object, const ExtraResource& extra, Inventory& out) {
  note_switched(object, extra.kind(), out);
  std::string field = extra.text.substr(extra.text.find('=') + 1);
  // Every value at the path (a list element step fans out).
  std::vector<const json*> at = {&object};
  for (const auto& step : extra.path) {
    bool each = step.ends_with("[]");
    std::string key = each ? step.substr(0, step.size() - 2) : step;
    std::vector<const json*> next;
    for (const json* j : at) {
      if (!j->is_object() || !j->contains(key))
        continue;
      const json& v = (*j)[key];
      if (each && v.is_array())
        for (const auto& e : v)
          next.push_back(&e);
      else if (!each)
        next.push_back(&v);
    }
    at = std::move(next);
  }
  for (const json* j : at) {
    if (j->is_string()) {
      Inventory one;
      json pseudo = {{"metadata", object.contains("metadata") ? object["metadata"] : json::object()}};
      add_containers(json{{"containers", json::array({{{"name", "field"}, {"image", *j}}})}}, pseudo, extra.kind(), one);
      for (auto& u : one.uses) {
        u.container_type = "field";
        u.container = field; // the user's own --extra-resource path
        out.uses.push_back(std::move(u));
      }
      for (auto& w : one.warnings)
        out.warnings.push_back(std::move(w));
      out.invalid_names += one.invalid_names;
    } else if (j->is_object() && j->contains("containers")) {
      add_containers(*j, object, extra.kind(), out); // a pod spec
    } else if (j->is_object() && j->contains("spec") && (*j)["spec"].is_object() && (*j)["spec"].contains("containers")) {
      add_containers((*j)["spec"], object, extra.kind(), out); // a pod template
    }
  }
}

void collect_images(const json& object, const std::string& kind, Inventory& out) {
  note_switched(object, kind, out);
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
  auto list_kind = [&](const Resource& res, const ExtraResource* extra) -> http::Status {
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
      std::size_t count = 0, skipped = 0, invalid = 0, foreign = 0;
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
            // An object's namespace and name go into API paths, commands and reports: one that
            // cannot be a name is reported (escaped) and left out, never used.
            const json* meta = item.is_object() && item.contains("metadata") ? &item["metadata"] : nullptr;
            const std::string item_ns = meta ? str(*meta, "namespace") : "";
            const std::string item_name = meta ? str(*meta, "name") : "";
            // What -n asked for is what is read: an object of another namespace in the list of
            // namespace N (a server that ignores the path) is left out, and said so.
            if (!ns.empty() && item_ns != ns) {
              if (++foreign <= 10)
                listed.warnings.push_back(res.plural + " in namespace " + ns + ": the API server listed an object of "
                                          "namespace \"" + util::escape_control(item_ns.substr(0, 100)) + "\" (" +
                                          util::escape_control(item_name.substr(0, 100)) + "), left out");
              return;
            }
            if ((!item_ns.empty() && !valid_object_name(item_ns)) || !valid_object_name(item_name)) {
              if (++invalid <= 10)
                listed.warnings.push_back(res.plural + ": an object whose name cannot be one, left out: \"" +
                                          util::escape_control(item_ns.substr(0, 100)) + "/" +
                                          util::escape_control(item_name.substr(0, 100)) + "\"");
              return;
            }
            if (extra)
              collect_extra_images(item, *extra, listed);
            else
              collect_images(item, res.kind, listed);
            ++count;
          },
          [&] {
            listed = Inventory{};
            count = 0;
            skipped = 0;
            invalid = 0;
            foreign = 0;
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
        for (auto& s : listed.switched)
          part.switched.push_back(std::move(s));
        if (invalid > 10)
          listed.warnings.push_back(res.plural + ": " + std::to_string(invalid - 10) +
                                    " more object(s) whose names cannot be names, left out");
        if (foreign > 10)
          listed.warnings.push_back(res.plural + " in namespace " + ns + ": " + std::to_string(foreign - 10) +
                                    " more object(s) of other namespaces, left out");
        for (auto& w : listed.warnings)
          part.warnings.push_back(std::move(w));
        part.invalid_names += listed.invalid_names + invalid;
      }
      if (*outcome != ListOutcome::ok) {
        std::lock_guard lock(mutex);
        std::string what = extra ? extra->group + (extra->group.empty() ? "" : "/") + extra->version + "/" + res.plural
                                 : res.plural;
        if (extra && *outcome == ListOutcome::not_found)
          problem = "not served by this cluster (is its CustomResourceDefinition installed, in that version?)";
        inventory.warnings.push_back(what + (ns.empty() ? "" : " in namespace " + ns) + ": " + problem);
        if (*outcome == ListOutcome::forbidden)
          ++inventory.forbidden;
        else if (!extra)
          ++not_served;
        log->warn("cannot list {}{}: {}", what, ns.empty() ? "" : " in namespace " + ns, problem);
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
    for (auto& s : part.switched)
      inventory.switched.push_back(std::move(s));
    for (auto& w : part.warnings)
      inventory.warnings.push_back(std::move(w));
    inventory.invalid_names += part.invalid_names;
    return {};
  };

  std::vector<std::future<http::Status>> futures;
  for (const auto& res : resources())
    futures.push_back(std::async(std::launch::async, list_kind, std::cref(res), nullptr));
  std::vector<Resource> extras;
  extras.reserve(options.extra.size()); // (the futures hold references into it)
  for (const auto& e : options.extra) {
    extras.push_back({e.kind(), e.group.empty() ? e.version : e.group + "/" + e.version, e.resource, ""});
    futures.push_back(std::async(std::launch::async, list_kind, std::cref(extras.back()), &e));
  }
  std::optional<http::Error> first;
  for (auto& f : futures) {
    auto st = f.get();
    if (!st && !first)
      first = st.error();
  }
  if (first)
    return *first;
  inventory.none_served = not_served == resources().size();
  return inventory;
}

} // namespace kube
