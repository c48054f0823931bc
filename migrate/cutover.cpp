// Why this file is over 600 lines: the cutover's three steps (verify --cluster's checks, rewrite
// --apply's switch, rollback) share one model of a workload's containers, the annotations written
// by one step and read back (distrusted) by another, and the patch-with-retry path. Split along the
// steps (check / switch and roll back) is the next step when it grows; the checks come first
// (read_targets .. cluster_check_report), the switch and the rollback after them.
#include "migrate/cutover.hpp"

#include "http/base64.hpp"
#include "http/url.hpp"
#include "migrate/discover.hpp"
#include "migrate/inputs.hpp"
#include "registry/client.hpp"
#include "registry/manifest.hpp"
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

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (const auto& s : v)
    out += (out.empty() ? "" : sep) + s;
  return out;
}

/// Kinds whose objects rewrite --apply patches (the pod template, or the Pod's own spec).
bool patchable(const std::string& kind) {
  return kind == "Deployment" || kind == "StatefulSet" || kind == "DaemonSet" || kind == "CronJob" ||
         kind == "ReplicaSet" || kind == "ReplicationController" || kind == "Pod";
}

/// A registry credential from a pull secret's auths entry.
struct PullCredential {
  std::string secret; ///< "ns/name"
  std::string username, password;
};

/// Whether a docker config key ("registry.example.com", "https://index.docker.io/v1/",
/// "registry.example.com/team", "*.example.com") covers `ref`, as the kubelet's keyring matches.
bool key_matches(std::string key, const registry::Reference& ref) {
  if (auto scheme = key.find("://"); scheme != std::string::npos)
    key = key.substr(scheme + 3);
  while (!key.empty() && key.back() == '/')
    key.pop_back();
  std::string host = key.substr(0, key.find('/'));
  std::string path = key.find('/') == std::string::npos ? "" : key.substr(key.find('/') + 1);
  if (registry::is_docker_hub(host) || host == "index.docker.io") {
    host = std::string(registry::docker_hub);
    if (path == "v1" || path == "v2")
      path.clear();
  }
  if (path == "v1" || path == "v2")
    path.clear();
  bool host_ok = host == ref.registry;
  if (!host_ok && host.rfind("*.", 0) == 0) {
    auto dot = ref.registry.find('.');
    host_ok = dot != std::string::npos && ref.registry.substr(dot) == host.substr(1);
  }
  if (!host_ok)
    return false;
  return path.empty() || ref.repository == path || ref.repository.rfind(path + "/", 0) == 0;
}

std::vector<PullCredential> credentials_for(const json& auths, const std::string& secret, const registry::Reference& ref) {
  std::vector<PullCredential> out;
  if (!auths.is_object())
    return out;
  for (const auto& item : auths.items()) {
    if (!key_matches(item.key(), ref) || !item.value().is_object())
      continue;
    const auto& a = item.value();
    PullCredential c{secret, util::string_field(a, "username"), util::string_field(a, "password")};
    if (auto encoded = util::string_field(a, "auth"); !encoded.empty())
      if (auto decoded = http::base64_decode(encoded); decoded && decoded->find(':') != std::string::npos) {
        c.username = decoded->substr(0, decoded->find(':'));
        c.password = decoded->substr(decoded->find(':') + 1);
      }
    if (!c.username.empty() || !c.password.empty())
      out.push_back(std::move(c));
  }
  return out;
}

/// The registries the check talks to, one per auth entry (migration credentials) or per pull credential.
class Registries {
public:
  Registries(http::Client& http, const AuthConfig& auth, std::shared_ptr<spdlog::logger> log)
      : m_http(http), m_auth(auth), m_log(std::move(log)) {}

  /// With the migration's credentials (auth.json).
  registry::Registry& robot(const registry::Reference& ref) {
    std::string key;
    auto options = registry_options(m_auth, ref, key);
    return get("robot|" + key, std::move(options));
  }

  /// With these credentials only (anonymous when `cred` is null), auth.json's transport settings.
  registry::Registry& workload(const registry::Reference& ref, const PullCredential* cred) {
    std::string key;
    auto options = registry_options(m_auth, ref, key);
    options.credentials = cred ? registry::Credentials(cred->username, cred->password) : registry::Credentials();
    return get("pull|" + key + "|" + (cred ? cred->secret + "|" + cred->username : "anonymous"), std::move(options));
  }

private:
  registry::Registry& get(const std::string& key, registry::RegistryOptions options) {
    auto& r = m_registries[key];
    if (!r)
      r = std::make_unique<registry::Registry>(m_http, std::move(options), m_log);
    return *r;
  }
  http::Client& m_http;
  const AuthConfig& m_auth;
  std::shared_ptr<spdlog::logger> m_log;
  std::map<std::string, std::unique_ptr<registry::Registry>> m_registries;
};

/// What a target resolves to with the migration's credentials.
struct TargetInfo {
  bool exists = false;
  std::string digest;
  std::string error;                  ///< could not tell
  std::vector<std::string> platforms; ///< empty = unknown
  std::string platform_error;
};

std::string platform_text(const registry::Platform& p) {
  return p.os + "/" + p.architecture + (p.variant.empty() ? "" : "/" + p.variant);
}

TargetInfo inspect_target(Registries& regs, const registry::Reference& ref, bool platforms) {
  TargetInfo t;
  auto& reg = regs.robot(ref);
  auto head = reg.head_manifest(ref.repository, ref.reference());
  if (!head) {
    t.error = head.error().message;
    return t;
  }
  if (!*head)
    return t;
  t.exists = true;
  t.digest = (*head)->digest;
  if (!platforms)
    return t;
  auto manifest = reg.get_manifest(ref.repository, t.digest);
  if (!manifest) {
    t.platform_error = manifest.error().message;
    return t;
  }
  auto parsed = registry::parse_manifest(manifest->bytes, manifest->media_type);
  if (!parsed) {
    t.platform_error = parsed.error().message;
    return t;
  }
  if (parsed->is_index) {
    for (const auto& m : parsed->manifests)
      if (m.platform && m.platform->os != "unknown") // attestation manifests say unknown/unknown
        t.platforms.push_back(platform_text(*m.platform));
    return t;
  }
  if (!parsed->config || parsed->config->size > (4 << 20)) {
    t.platform_error = "no image config to read the platform from";
    return t;
  }
  std::string config;
  auto read = reg.read_blob(ref.repository, *parsed->config, [&](std::string_view chunk) -> http::Status {
    if (config.size() + chunk.size() > static_cast<std::size_t>(parsed->config->size))
      return http::make_error(http::ErrorKind::invalid, "the config blob is larger than its descriptor");
    config.append(chunk);
    return {};
  });
  if (!read) {
    t.platform_error = read.error().message;
    return t;
  }
  try {
    auto j = util::parse_json(config);
    registry::Platform p{util::string_field(j, "os"), util::string_field(j, "architecture"),
                         util::string_field(j, "variant")};
    if (!p.os.empty() && !p.architecture.empty())
      t.platforms.push_back(platform_text(p));
  } catch (const json::exception&) {
    t.platform_error = "the image config is not JSON";
  }
  return t;
}

/// Whether an image of `platforms` runs on a node of `node` ("linux/arm64"): a variant-less entry
/// covers every variant, and a node platform has no variant.
bool covers(const std::vector<std::string>& platforms, const std::string& node) {
  for (const auto& p : platforms)
    if (p == node || p.rfind(node + "/", 0) == 0)
      return true;
  return false;
}

struct Grouped {
  std::vector<const kube::ImageUse*> uses;
};

} // namespace

std::map<std::string, std::string> read_targets(const nlohmann::json& doc, const std::string& file) {
  if (!doc.is_object())
    throw ConfigError(file + ": must be an object mapping source images to migrated images");
  std::map<std::string, std::string> targets;
  for (const auto& item : doc.items()) {
    auto key = source_key(item.key());
    if (key && item.value().is_string() && !item.value().get<std::string>().empty())
      targets[*key] = item.value().get<std::string>();
  }
  return targets;
}

bool WorkloadCheck::mapped() const {
  return std::any_of(containers.begin(), containers.end(), [](const ContainerCheck& c) { return !c.target.empty(); });
}

WorkloadCheck::Status WorkloadCheck::status() const {
  if (!std::all_of(containers.begin(), containers.end(), [](const ContainerCheck& c) { return c.problems.empty(); }))
    return Status::not_ready;
  if (!cannot_check.empty())
    return Status::cannot_check;
  return mapped() ? Status::ready : Status::not_mapped;
}

std::vector<std::string> WorkloadCheck::staying() const {
  std::vector<std::string> out;
  for (const auto& c : containers)
    if (c.target.empty() && c.problems.empty() && c.container_type != "env")
      out.push_back(c.container + " (" + c.image + ")");
  return out;
}

std::size_t ClusterCheck::count(WorkloadCheck::Status status) const {
  return static_cast<std::size_t>(std::count_if(workloads.begin(), workloads.end(),
                                                [&](const WorkloadCheck& w) { return w.status() == status; }));
}

ClusterCheck verify_cluster(const kube::Inventory& inventory, kube::Client& kube, http::Client& http,
                            const AuthConfig& auth, const std::map<std::string, std::string>& targets,
                            std::shared_ptr<spdlog::logger> log) {
  ClusterCheck out;
  // An image already in a target repository (a workload switched before, by tag or pinned by
  // digest) is its own target.
  std::set<std::string> target_names;
  for (const auto& [source, target] : targets)
    if (auto r = registry::Reference::parse_normalized(target))
      target_names.insert(r->name());

  // The nodes' platforms.
  std::vector<kube::NodePlatform> nodes;
  bool nodes_known = false;
  std::string nodes_forbidden; // the permission a 403 says is missing
  if (auto listed = kube::list_nodes(kube)) {
    nodes_known = true;
    std::set<std::string> seen;
    for (auto& n : *listed) {
      if (!n.problem.empty()) {
        out.warnings.push_back(n.problem);
        continue;
      }
      if (seen.insert(n.os + "/" + n.architecture).second)
        out.node_platforms.push_back(n.os + "/" + n.architecture);
      nodes.push_back(std::move(n));
    }
  } else if (listed.error().status == 403) {
    nodes_forbidden = "list nodes (their platforms)";
  } else {
    out.warnings.push_back("the nodes' platforms are not checked: " + listed.error().message);
  }

  // Workloads in a stable order: namespace, kind, name.
  std::map<std::tuple<std::string, std::string, std::string>, Grouped> groups;
  for (const auto& u : inventory.uses)
    if (!u.owned && u.kind != "PodTemplate")
      groups[{u.ns, u.kind, u.name}].uses.push_back(&u);

  Registries regs(http, auth, log);
  std::map<std::string, TargetInfo> target_cache;
  std::map<std::string, std::pair<std::string, std::string>> source_cache; // key -> digest, error
  std::map<std::string, http::Result<json>> secret_cache;                 // ns/name -> auths
  std::map<std::string, http::Result<std::vector<std::string>>> sa_cache; // ns/name -> secrets
  std::map<std::string, std::string> pull_cache;                          // target|creds -> problem ("" = ok)

  for (const auto& [id, group] : groups) {
    const auto& [ns, kind, name] = id;
    WorkloadCheck w{kind, ns, name, {}, {}, {}};
    const kube::ImageUse& first = *group.uses.front();
    // The secrets its pods pull with.
    std::vector<std::string> secret_names = first.pull_secrets;
    std::string secrets_problem;
    auto cannot = [&w](const std::string& permission) {
      if (std::find(w.cannot_check.begin(), w.cannot_check.end(), permission) == w.cannot_check.end())
        w.cannot_check.push_back(permission);
    };
    bool sa_forbidden = false;
    if (!secret_names.empty()) {
      w.pull_secrets_from = "pod spec";
    } else {
      std::string sa_key = ns + "/" + first.service_account;
      auto it = sa_cache.find(sa_key);
      if (it == sa_cache.end())
        it = sa_cache.emplace(sa_key, kube::service_account_pull_secrets(kube, ns, first.service_account)).first;
      if (!it->second && it->second.error().status == 403)
        sa_forbidden = true;
      else if (!it->second)
        secrets_problem = "cannot read its service account's pull secrets: " + it->second.error().message;
      else
        secret_names = *it->second;
      w.pull_secrets_from = secret_names.empty() ? "none (anonymous)" : "service account " + first.service_account;
    }
    for (const auto& s : secret_names)
      w.pull_secrets.push_back(ns + "/" + s);

    for (const auto* u : group.uses) {
      ContainerCheck c;
      c.container = u->container;
      c.container_type = u->container_type;
      c.env_name = u->env_name;
      c.image = u->image;
      auto key = source_key(u->image);
      if (!key) {
        c.problems.push_back("invalid image reference: " + key.error().message);
        w.containers.push_back(std::move(c));
        continue;
      }
      if (auto t = targets.find(*key); t != targets.end())
        c.target = t->second;
      else if (auto r = registry::Reference::parse_normalized(u->image); r && target_names.count(r->name()))
        c.target = u->image; // already pointing at a target
      bool advisory = u->container_type == "env";
      auto& findings = advisory ? c.notes : c.problems;
      if (advisory)
        c.notes.push_back(u->env_name + " of container " + u->container +
                          ": an image the operator runs itself; rewrite leaves it to the operator's configuration");
      if (c.target.empty()) {
        // Not in images.json: deliberately left where it is (the rules say what moves). Not a
        // problem of the workload; said in its line.
        if (advisory)
          c.notes.push_back("not in images.json (it would keep pulling from " + u->image + ")");
        w.containers.push_back(std::move(c));
        continue;
      }
      auto target = registry::Reference::parse_normalized(c.target);
      auto source = registry::Reference::parse_normalized(u->image);
      if (!target) {
        findings.push_back("target " + c.target + " is not a valid reference");
        w.containers.push_back(std::move(c));
        continue;
      }
      // 1. The target exists (the migration's credentials), 3. with the nodes' platforms.
      auto tkey = target->name() + "@" + target->reference();
      auto tit = target_cache.find(tkey);
      if (tit == target_cache.end())
        tit = target_cache.emplace(tkey, inspect_target(regs, *target, nodes_known)).first;
      const TargetInfo& ti = tit->second;
      if (!ti.error.empty()) {
        findings.push_back("cannot read the target " + c.target + ": " + ti.error);
        w.containers.push_back(std::move(c));
        continue;
      }
      if (!ti.exists) {
        findings.push_back("target " + c.target + " does not exist");
        w.containers.push_back(std::move(c));
        continue;
      }
      c.target_digest = ti.digest;
      c.platforms = ti.platforms;
      // 2. The same bytes: what the pod runs now, else the source's digest.
      std::set<std::string> running;
      if (kind == "Pod")
        for (const auto& r : inventory.running)
          if (r.ns == ns && r.pod == name && r.container == u->container && r.digest.rfind("sha256:", 0) == 0)
            running.insert(r.digest);
      if (!running.empty()) {
        c.expected_from = "running pod";
        c.expected_digest = *running.begin();
        if (!running.count(ti.digest) || running.size() > 1)
          findings.push_back("digest mismatch: the pod runs " + join({running.begin(), running.end()}, ", ") +
                             ", the target " + c.target + " is " + ti.digest);
      } else if (source && !source->digest.empty()) {
        c.expected_from = "pinned";
        c.expected_digest = source->digest;
        if (source->digest != ti.digest)
          findings.push_back("digest mismatch: pinned to " + source->digest + ", the target " + c.target + " is " +
                             ti.digest);
      } else if (source && c.target != u->image) {
        std::string skey = source->name() + ":" + source->tag;
        auto sit = source_cache.find(skey);
        if (sit == source_cache.end()) {
          auto head = regs.robot(*source).head_manifest(source->repository, source->reference());
          std::pair<std::string, std::string> v;
          if (!head)
            v.second = head.error().message;
          else if (!*head)
            v.second = "the source " + u->image + " does not exist any more";
          else
            v.first = (*head)->digest;
          sit = source_cache.emplace(skey, v).first;
        }
        c.expected_from = "source";
        c.expected_digest = sit->second.first;
        if (!sit->second.second.empty())
          findings.push_back("cannot compare digests: " + sit->second.second);
        else if (sit->second.first != ti.digest)
          findings.push_back("digest mismatch: the source " + u->image + " is " + sit->second.first + ", the target " +
                             c.target + " is " + ti.digest);
      }
      // 3. Every platform of the nodes it may run on.
      if (!nodes_forbidden.empty() && !advisory)
        cannot(nodes_forbidden);
      if (nodes_known && !advisory) {
        auto want_os = u->node_selector.count("kubernetes.io/os") ? u->node_selector.at("kubernetes.io/os") : "linux";
        auto want_arch = u->node_selector.count("kubernetes.io/arch") ? u->node_selector.at("kubernetes.io/arch") : "";
        std::set<std::string> needed;
        for (const auto& n : nodes)
          if (n.os == want_os && (want_arch.empty() || n.architecture == want_arch))
            needed.insert(n.os + "/" + n.architecture);
        if (ti.platforms.empty() && !needed.empty())
          c.notes.push_back("the target's platform is unknown (" + ti.platform_error + ")");
        else
          for (const auto& p : needed)
            if (!covers(ti.platforms, p))
              findings.push_back("no " + p + " image in " + c.target + " (it has " + join(ti.platforms, ", ") +
                                 "), and the cluster has " + p + " nodes");
      }
      // 4. Pullable with the workload's own credentials.
      if (!secrets_problem.empty()) {
        findings.push_back(secrets_problem);
      } else if (sa_forbidden && !advisory) {
        cannot("get serviceaccounts in namespace " + ns + " (which pull secrets its pods use)");
      } else if (!advisory) {
        std::vector<PullCredential> creds;
        std::vector<std::string> unreadable;
        bool forbidden = false;
        for (const auto& s : secret_names) {
          std::string skey = ns + "/" + s;
          auto it = secret_cache.find(skey);
          if (it == secret_cache.end())
            it = secret_cache.emplace(skey, kube::pull_secret_auths(kube, ns, s)).first;
          if (!it->second && it->second.error().status == 403)
            forbidden = true;
          else if (!it->second)
            unreadable.push_back(it->second.error().message);
          else
            for (auto& cred : credentials_for(*it->second, skey, *target))
              creds.push_back(std::move(cred));
        }
        if (creds.empty() && forbidden) {
          cannot("get secrets in namespace " + ns + " (its pull secrets)");
        } else if (creds.empty() && !unreadable.empty()) {
          findings.push_back("cannot check that it pulls: " + join(unreadable, "; "));
        } else {
          std::string pkey = tkey + "|" + (creds.empty() ? "anonymous" : [&] {
            std::string k;
            for (const auto& cr : creds)
              k += cr.secret + ":" + cr.username + ";";
            return k;
          }());
          auto pit = pull_cache.find(pkey);
          if (pit == pull_cache.end()) {
            std::string problem;
            // The kubelet tries each matching credential in turn; none matching: anonymous.
            std::vector<const PullCredential*> tries;
            for (const auto& cr : creds)
              tries.push_back(&cr);
            if (tries.empty())
              tries.push_back(nullptr);
            for (const auto* cr : tries) {
              auto head = regs.workload(*target, cr).head_manifest(target->repository, target->reference());
              std::string with = cr ? "the credentials of pull secret " + cr->secret : "no credentials (anonymous)";
              if (head && *head) {
                problem.clear();
                break;
              }
              problem = !head ? "not pullable with " + with + ": " + head.error().message
                              : "not pullable with " + with + ": the registry says it does not exist (only other "
                                                              "accounts may see it)";
            }
            pit = pull_cache.emplace(pkey, problem).first;
          }
          if (!pit->second.empty())
            findings.push_back(pit->second);
        }
      }
      w.containers.push_back(std::move(c));
    }
    out.workloads.push_back(std::move(w));
  }
  return out;
}

std::string cluster_check_text(const ClusterCheck& check) {
  std::ostringstream out;
  for (const auto& w : check.workloads) {
    std::vector<std::string> reasons, notes;
    for (const auto& c : w.containers) {
      std::string who = c.container_type == "env" ? c.container + " " + c.env_name : c.container;
      for (const auto& p : c.problems)
        reasons.push_back(who + ": " + p);
      for (const auto& n : c.notes)
        notes.push_back(n);
    }
    auto status = w.status();
    if (status == WorkloadCheck::Status::not_mapped) {
      out << "NOT MAPPED " << w.id() << " (not in images.json: stays where it is)\n";
      continue;
    }
    out << (status == WorkloadCheck::Status::ready          ? "READY      "
            : status == WorkloadCheck::Status::cannot_check ? "CANNOT CHECK "
                                                            : "NOT READY  ")
        << w.id();
    if (!w.cannot_check.empty())
      reasons.push_back("no permission to " + join(w.cannot_check, ", ") +
                        " (the RBAC the cutover needs: manifests/cutover/, docs/KUBERNETES.md)");
    if (!reasons.empty())
      out << ": " << util::escape_control(join(reasons, "; "));
    if (auto staying = w.staying(); !staying.empty())
      out << " (stays where it is, not in images.json: " << util::escape_control(join(staying, ", ")) << ")";
    out << "\n";
    for (const auto& n : notes)
      out << "           note: " << util::escape_control(n) << "\n";
  }
  for (const auto& wn : check.warnings)
    out << "warning: " << util::escape_control(wn) << "\n";
  using Status = WorkloadCheck::Status;
  out << "verified " << check.workloads.size() << " workload(s): " << check.count(Status::ready) << " ready, "
      << check.not_ready() << " not ready";
  if (auto n = check.count(Status::cannot_check))
    out << ", " << n << " cannot be checked";
  if (auto n = check.count(Status::not_mapped))
    out << ", " << n << " not mapped (not in images.json)";
  if (!check.node_platforms.empty())
    out << " (nodes: " << join(check.node_platforms, ", ") << ")";
  out << "\n";
  return out.str();
}

nlohmann::json cluster_check_report(const ClusterCheck& check) {
  using Status = WorkloadCheck::Status;
  json workloads = json::array();
  for (const auto& w : check.workloads) {
    json containers = json::array();
    for (const auto& c : w.containers)
      containers.push_back({{"container", c.container},
                            {"containerType", c.container_type},
                            {"env", c.env_name.empty() ? json(nullptr) : json(c.env_name)},
                            {"image", c.image},
                            {"target", c.target.empty() ? json(nullptr) : json(c.target)},
                            {"targetDigest", c.target_digest.empty() ? json(nullptr) : json(c.target_digest)},
                            {"expectedDigest", c.expected_digest.empty() ? json(nullptr) : json(c.expected_digest)},
                            {"expectedFrom", c.expected_from.empty() ? json(nullptr) : json(c.expected_from)},
                            {"platforms", c.platforms},
                            {"ready", c.problems.empty()},
                            {"problems", c.problems},
                            {"notes", c.notes}});
    auto status = w.status();
    workloads.push_back({{"kind", w.kind},
                         {"namespace", w.ns},
                         {"name", w.name},
                         {"ready", w.ready()},
                         {"status", status == Status::ready          ? "ready"
                                    : status == Status::not_ready    ? "not ready"
                                    : status == Status::cannot_check ? "cannot check"
                                                                     : "not mapped"},
                         {"cannotCheck", w.cannot_check},
                         {"staying", w.staying()},
                         {"pullSecrets", w.pull_secrets},
                         {"pullSecretsFrom", w.pull_secrets_from},
                         {"containers", containers}});
  }
  return {{"workloads", workloads},
          {"ready", check.count(Status::ready)},
          {"notReady", check.not_ready()},
          {"cannotCheck", check.count(Status::cannot_check)},
          {"notMapped", check.count(Status::not_mapped)},
          {"nodePlatforms", check.node_platforms},
          {"warnings", check.warnings}};
}

namespace {

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
        staying.empty() ? "" : " (stays where it is, not in images.json: " + util::escape_control(join(staying, ", ")) + ")";
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
        say("MANUAL     " + id + ": " + why + ": " + util::escape_control(join(what, "; ")));
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
      say("REFUSED    " + id + ": NOT READY (" + util::escape_control(join(reasons, "; ")) +
          "); fix it, or --force");
      ++result.failed;
      continue;
    }
    if (status == WorkloadCheck::Status::cannot_check && !options.force) {
      // Nothing wrong was found, but nothing was proven either: a permission to grant, not an image to fix.
      say("CANNOT CHECK " + id + ": no permission to " + util::escape_control(join(w.cannot_check, ", ")) +
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
      say("WOULD SWITCH " + id + ": " + util::escape_control(join(what, " ")) + " (checked by the API server, dryRun=All)" +
          stays);
      ++result.changed;
      continue;
    }
    say("SWITCHED   " + id + ": " + util::escape_control(join(what, " ")) + retried + stays);
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
        why_not = "its image-migrator annotations do not describe a switch of this object: " + join(unusable, "; ") +
                  "; nothing restored";
        return std::nullopt;
      }
      if (!changed_since.empty()) {
        const json& a = (*md)["annotations"];
        std::string when = a.contains(kube::switched_by_annotation) && a[kube::switched_by_annotation].is_string()
                               ? a[kube::switched_by_annotation].get<std::string>()
                               : "?";
        why_not = "changed since the switch (" + when + "): " + join(changed_since, "; ") +
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
      say("WOULD RESTORE " + id + ": " + util::escape_control(join(restored, " ")) + " (checked by the API server, dryRun=All)");
    } else {
      say("RESTORED   " + id + ": " + util::escape_control(join(restored, " ")) +
          (restored.empty() ? "(images already the original ones; annotations removed)" : "") + retried);
    }
    ++result.changed;
  }
  return result;
}

} // namespace migrate
