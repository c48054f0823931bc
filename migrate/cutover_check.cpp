// The cutover's first step, verify --cluster: which workloads would pull their new images, with their
// own pull secrets, on the platforms of their nodes (ClusterCheck), and its text and JSON reports.
// The switch and the rollback are in cutover_switch.cpp.
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
  Registries(http::Client& http, const AuthConfig& auth, EnvLookup env, std::shared_ptr<spdlog::logger> log)
      : m_http(http), m_auth(auth), m_env(std::move(env)), m_log(std::move(log)) {}

  /// With the migration's credentials (auth.json).
  registry::Registry& robot(const registry::Reference& ref) {
    std::string key;
    auto options = registry_options(m_auth, ref, m_env, key);
    return get("robot|" + key, std::move(options));
  }

  /// With these credentials only (anonymous when `cred` is null), auth.json's transport settings.
  registry::Registry& workload(const registry::Reference& ref, const PullCredential* cred) {
    std::string key;
    auto options = registry_options(m_auth, ref, m_env, key);
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
  EnvLookup m_env;
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
                            const AuthConfig& auth, const EnvLookup& env, const std::map<std::string, std::string>& targets,
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

  Registries regs(http, auth, env, log);
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
          findings.push_back("digest mismatch: the pod runs " + util::join({running.begin(), running.end()}, ", ") +
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
              findings.push_back("no " + p + " image in " + c.target + " (it has " + util::join(ti.platforms, ", ") +
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
          findings.push_back("cannot check that it pulls: " + util::join(unreadable, "; "));
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
      reasons.push_back("no permission to " + util::join(w.cannot_check, ", ") +
                        " (the RBAC the cutover needs: manifests/cutover/, docs/KUBERNETES.md)");
    if (!reasons.empty())
      out << ": " << util::escape_control(util::join(reasons, "; "));
    if (auto staying = w.staying(); !staying.empty())
      out << " (stays where it is, not in images.json: " << util::escape_control(util::join(staying, ", ")) << ")";
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
    out << " (nodes: " << util::join(check.node_platforms, ", ") << ")";
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

} // namespace migrate
