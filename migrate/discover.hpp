#pragma once
// From a cluster inventory (kube::Inventory) to what the copy command consumes: images.json
// (normalized source -> target under one repository), and the pre-migration audit report.

#include "kube/discovery.hpp"
#include "util/env.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace migrate {

/// How many leading path components of the source repository are dropped (Harbor's flattening).
struct Flatten {
  bool all = true; ///< keep only the last component
  int levels = 0;  ///< when !all: drop this many leading components (0 = keep the whole path)
};

/// Parses "all", "none" or a number of levels; throws ConfigError otherwise.
Flatten parse_flatten(const std::string& text);

/// The images.json key for an image as written in a pod spec: registry and library/ filled in,
/// :latest added when there is neither tag nor digest, tag and digest otherwise kept as given.
http::Result<std::string> source_key(const std::string& image);

/// One planned copy.
struct PlannedImage {
  std::string source; ///< normalized key
  std::string target;
};

struct Plan {
  std::map<std::string, std::string> images; ///< sorted source -> target
  std::vector<std::string> invalid;          ///< "image: why" for spec images that do not parse
};

/// Maps every image of the inventory to `<repo>/<flattened path>[:tag][@digest]`. Two sources that
/// would land on the same target throw ConfigError naming both.
Plan plan_images(const kube::Inventory& inventory, const std::string& repo, const Flatten& flatten);

/// Writes images.json atomically (temporary file in the same directory, then rename).
void write_json_atomically(const std::string& path, const nlohmann::json& doc, unsigned mode = 0644);

/// Per image: workloads, running digests, flags (mutable tag, pinned, drift, pull secrets, already
/// in target); totals per source registry. `in_target` maps source key -> present in the target.
nlohmann::json audit_report(const kube::Inventory& inventory, const Plan& plan,
                            const std::map<std::string, bool>& in_target);

/// The report as a readable table.
std::string audit_table(const nlohmann::json& report);

} // namespace migrate

namespace spdlog {
class logger;
}
namespace http {
class Client;
}

namespace migrate {
class AuthConfig;

/// auth.json entries for the source registries, from the imagePullSecrets of the workloads that use
/// their images (read through `auths_of(namespace, secret)`); the first secret that has credentials
/// for a registry wins. Problems (a secret that cannot be read) are appended to `warnings`.
nlohmann::json auth_from_pull_secrets(
    const kube::Inventory& inventory,
    const std::function<http::Result<nlohmann::json>(const std::string&, const std::string&)>& auths_of,
    std::vector<std::string>& warnings);

/// HEADs every planned target (credentials from `auth`): source key -> already present.
std::map<std::string, bool> check_targets(http::Client& client, const AuthConfig& auth, const util::EnvLookup& env,
                                          const Plan& plan, std::shared_ptr<spdlog::logger> log);
} // namespace migrate
