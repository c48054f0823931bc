#include "migrate/discover.hpp"

#include "http/base64.hpp"
#include "migrate/config.hpp"
#include "migrate/inputs.hpp"
#include "registry/client.hpp"
#include "registry/reference.hpp"
#include "util/json.hpp"
#include "util/text.hpp"

#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

namespace migrate {

namespace {

std::string flatten_path(const std::string& repository, const Flatten& f) {
  std::vector<std::string> parts;
  std::stringstream ss(repository);
  std::string p;
  while (std::getline(ss, p, '/'))
    parts.push_back(p);
  std::size_t drop = f.all ? parts.size() - 1 : std::min<std::size_t>(static_cast<std::size_t>(f.levels), parts.size() - 1);
  std::string out;
  for (std::size_t i = drop; i < parts.size(); ++i)
    out += (out.empty() ? "" : "/") + parts[i];
  return out;
}

std::string suffix(const registry::Reference& r) {
  std::string s;
  if (!r.tag.empty())
    s += ":" + r.tag;
  else if (r.digest.empty())
    s += ":latest";
  if (!r.digest.empty())
    s += "@" + r.digest;
  return s;
}

} // namespace

Flatten parse_flatten(const std::string& text) {
  Flatten f;
  if (text == "all")
    return f;
  f.all = false;
  if (text == "none")
    return f;
  if (!text.empty() && text.size() < 4 && text.find_first_not_of("0123456789") == std::string::npos) {
    f.levels = std::stoi(text);
    return f;
  }
  throw ConfigError("--flatten must be all, none or a number of levels, not \"" + text + "\"");
}

http::Result<std::string> source_key(const std::string& image) {
  auto r = registry::Reference::parse_normalized(image);
  if (!r)
    return r.error();
  return r->name() + suffix(*r);
}

Plan plan_images(const kube::Inventory& inventory, const std::string& repo, const Flatten& flatten) {
  Plan plan;
  std::set<std::string> seen_invalid;
  std::map<std::string, std::string> by_target;
  for (const auto& use : inventory.uses) {
    auto ref = registry::Reference::parse_normalized(use.image);
    if (!ref) {
      if (seen_invalid.insert(use.image).second)
        plan.invalid.push_back(use.image + " (" + use.kind + " " + use.ns + "/" + use.name + "): " + ref.error().message);
      continue;
    }
    std::string key = ref->name() + suffix(*ref);
    if (plan.images.count(key))
      continue;
    std::string target = repo + "/" + flatten_path(ref->repository, flatten) + suffix(*ref);
    auto [it, inserted] = by_target.emplace(target, key);
    if (!inserted)
      throw ConfigError("images " + it->second + " and " + key + " would both be copied to " + target +
                        "; use --flatten none or a smaller number of levels");
    plan.images.emplace(key, target);
  }
  return plan;
}

void write_json_atomically(const std::string& path, const nlohmann::json& doc, unsigned mode) {
  // Invalid UTF-8 (a registry's raw bytes in an error message) is replaced, never an exception that
  // would lose the whole file.
  write_file_atomically(path, doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", mode);
}

nlohmann::json audit_report(const kube::Inventory& inventory, const Plan& plan, const std::map<std::string, bool>& in_target) {
  using nlohmann::json;
  struct Entry {
    std::set<std::string> workloads_seen;
    json workloads = json::array();
    std::map<std::string, std::set<std::string>> digests; ///< digest -> ns/pod/container
    std::set<std::string> pull_secrets;
    std::set<std::string> spellings; ///< the image as written in the specs
  };
  std::map<std::string, Entry> entries;
  for (const auto& use : inventory.uses) {
    auto key = source_key(use.image);
    if (!key)
      continue;
    auto& e = entries[*key];
    e.spellings.insert(use.image);
    std::string id = use.kind + "/" + use.ns + "/" + use.name + "/" + use.container + "/" + use.env_name;
    if (e.workloads_seen.insert(id).second) {
      json w = {{"kind", use.kind}, {"namespace", use.ns}, {"name", use.name}, {"container", use.container},
                {"containerType", use.container_type}};
      if (!use.env_name.empty())
        w["env"] = use.env_name; // an operator's RELATED_IMAGE_*: the operator runs it, rewrite leaves it
      e.workloads.push_back(std::move(w));
    }
    for (const auto& s : use.pull_secrets)
      e.pull_secrets.insert(use.ns + "/" + s);
  }
  for (const auto& run : inventory.running) {
    auto key = source_key(run.spec_image.empty() ? run.status_image : run.spec_image);
    if (!key || !entries.count(*key))
      continue;
    entries[*key].digests[run.digest.empty() ? "unknown (" + run.image_id + ")" : run.digest].insert(run.ns + "/" + run.pod + "/" + run.container);
  }
  json images = json::array();
  std::map<std::string, json> totals;
  for (auto& [key, e] : entries) {
    auto ref = registry::Reference::parse_normalized(key);
    json running = json::object();
    std::size_t real_digests = 0;
    for (const auto& [digest, where] : e.digests) {
      running[digest] = json(where);
      real_digests += digest.rfind("sha256:", 0) == 0 ? 1 : 0;
    }
    bool pinned = !ref->digest.empty();
    // Mutable by name (latest, or no tag), or in fact: the same tag seen running two digests.
    const char* mutable_because = pinned                                 ? nullptr
                                  : ref->tag.empty() || ref->tag == "latest" ? "latest"
                                  : real_digests > 1                         ? "drift"
                                                                             : nullptr;
    bool mutable_tag = mutable_because != nullptr;
    json flags = {{"mutableTag", mutable_tag},
                  {"mutableBecause", mutable_because ? json(mutable_because) : json(nullptr)},
                  {"pinnedByDigest", pinned},
                  {"drift", real_digests > 1},
                  {"pullSecrets", json(std::vector<std::string>(e.pull_secrets.begin(), e.pull_secrets.end()))}};
    if (auto it = in_target.find(key); it != in_target.end())
      flags["inTarget"] = it->second;
    else
      flags["inTarget"] = nullptr;
    auto target = plan.images.find(key);
    images.push_back({{"image", key},
                      {"target", target == plan.images.end() ? json(nullptr) : json(target->second)},
                      {"registry", ref->registry},
                      {"spellings", json(std::vector<std::string>(e.spellings.begin(), e.spellings.end()))},
                      {"workloads", e.workloads},
                      {"runningDigests", running},
                      {"flags", flags}});
    auto& t = totals[ref->registry];
    if (t.is_null())
      t = {{"images", 0}, {"workloads", 0}, {"mutableTags", 0}, {"drift", 0}};
    t["images"] = t["images"].get<int>() + 1;
    t["workloads"] = t["workloads"].get<int>() + static_cast<int>(e.workloads.size());
    t["mutableTags"] = t["mutableTags"].get<int>() + (mutable_tag ? 1 : 0);
    t["drift"] = t["drift"].get<int>() + (real_digests > 1 ? 1 : 0);
  }
  json report = {{"images", images},
                 {"totals", totals},
                 {"objects", inventory.objects},
                 {"warnings", inventory.warnings},
                 {"invalidImages", plan.invalid}};
  return report;
}

std::string audit_table(const nlohmann::json& report) {
  std::ostringstream out;
  auto yes = [](bool b) { return b ? "yes" : "-"; };
  out << "IMAGE | WORKLOADS | RUNNING DIGESTS | MUTABLE | PINNED | DRIFT | PULL SECRETS | IN TARGET\n";
  for (const auto& img : report["images"]) {
    const auto& f = img["flags"];
    std::string in_target = f["inTarget"].is_null() ? "?" : (f["inTarget"].get<bool>() ? "yes" : "no");
    out << util::escape_control(img["image"].get<std::string>()) << " | " << img["workloads"].size() << " | " << img["runningDigests"].size()
        << " | " << yes(f["mutableTag"].get<bool>()) << " | " << yes(f["pinnedByDigest"].get<bool>()) << " | "
        << yes(f["drift"].get<bool>()) << " | " << f["pullSecrets"].size() << " | " << in_target << "\n";
  }
  out << "\nREGISTRY | IMAGES | WORKLOADS | MUTABLE TAGS | DRIFT\n";
  for (const auto& [registry, t] : report["totals"].items())
    out << util::escape_control(registry) << " | " << t["images"] << " | " << t["workloads"] << " | " << t["mutableTags"] << " | " << t["drift"] << "\n";
  for (const auto& w : report["warnings"])
    out << "warning: " << util::escape_control(w.get<std::string>()) << "\n";
  for (const auto& w : report["invalidImages"])
    out << "invalid image: " << util::escape_control(w.get<std::string>()) << "\n";
  return out.str();
}


nlohmann::json auth_from_pull_secrets(
    const kube::Inventory& inventory,
    const std::function<http::Result<nlohmann::json>(const std::string&, const std::string&)>& auths_of,
    std::vector<std::string>& warnings) {
  nlohmann::json out = nlohmann::json::object();
  std::map<std::string, http::Result<nlohmann::json>> secrets; // ns/name -> auths
  auto host_of = [](std::string key) {
    // Keys of auths may be URLs ("https://index.docker.io/v1/", "reg.io/v2/"): keep host[:port].
    if (auto scheme = key.find("://"); scheme != std::string::npos)
      key = key.substr(scheme + 3);
    key = key.substr(0, key.find('/'));
    return registry::is_docker_hub(key) ? std::string(registry::docker_hub) : key;
  };
  // registry -> credentials (user, password) -> the repositories pulled with them
  std::map<std::string, std::map<std::pair<std::string, std::string>, std::set<std::string>>> found;
  for (const auto& use : inventory.uses) {
    auto ref = registry::Reference::parse_normalized(use.image);
    if (!ref || use.pull_secrets.empty())
      continue;
    std::optional<std::pair<std::string, std::string>> cred;
    for (const auto& name : use.pull_secrets) {
      std::string id = use.ns + "/" + name;
      auto it = secrets.find(id);
      if (it == secrets.end()) {
        it = secrets.emplace(id, auths_of(use.ns, name)).first;
        if (!it->second)
          warnings.push_back(it->second.error().message);
      }
      if (!it->second || !it->second->is_object())
        continue;
      for (const auto& item : it->second->items()) {
        if (host_of(item.key()) != ref->registry || !item.value().is_object())
          continue;
        const auto& a = item.value();
        // A pull secret is the API server's data: a field of the wrong type is absent, not a crash.
        std::string user = util::string_field(a, "username"), pass = util::string_field(a, "password");
        if (a.contains("auth") && a["auth"].is_string())
          if (auto decoded = http::base64_decode(a["auth"].get<std::string>()); decoded && decoded->find(':') != std::string::npos) {
            user = decoded->substr(0, decoded->find(':'));
            pass = decoded->substr(decoded->find(':') + 1);
          }
        if (!user.empty() || !pass.empty()) {
          cred.emplace(user, pass);
          break;
        }
      }
      if (cred)
        break; // the kubelet too takes the first secret that has the registry
    }
    if (cred)
      found[ref->registry][*cred].insert(ref->repository);
  }
  for (const auto& [registry, creds] : found) {
    if (creds.size() == 1) {
      const auto& [user, pass] = creds.begin()->first;
      out[registry] = {{"username", escaped_literal(user)}, {"password", escaped_literal(pass)}};
      continue;
    }
    // Namespaces pull from one registry with different accounts: one entry per repository
    // ("registry/repository" keys, the longest match wins), so each keeps the account that works.
    warnings.push_back("registry " + registry + ": " + std::to_string(creds.size()) +
                       " different accounts in the pull secrets; written per repository");
    for (const auto& [cred, repositories] : creds)
      for (const auto& repository : repositories)
        if (!out.contains(registry + "/" + repository))
          out[registry + "/" + repository] = {{"username", escaped_literal(cred.first)},
                                              {"password", escaped_literal(cred.second)}};
  }
  return out;
}

std::map<std::string, bool> check_targets(http::Client& client, const AuthConfig& auth, const EnvLookup& env,
                                          const Plan& plan, std::shared_ptr<spdlog::logger> log) {
  std::map<std::string, bool> out;
  std::map<std::string, std::unique_ptr<registry::Registry>> registries;
  for (const auto& [source, target] : plan.images) {
    auto ref = registry::Reference::parse_normalized(target);
    if (!ref)
      continue;
    std::string key;
    auto options = registry_options(auth, *ref, env, key);
    auto& reg = registries[key];
    if (!reg)
      reg = std::make_unique<registry::Registry>(client, options, log);
    auto head = reg->head_manifest(ref->repository, ref->reference());
    if (!head) {
      log->warn("cannot check {}: {}", target, head.error().message);
      continue;
    }
    out[source] = head->has_value();
  }
  return out;
}

} // namespace migrate
