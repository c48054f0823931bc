#pragma once
// The cutover after a migration, per workload: prove that every image will pull from the new
// registry with the credentials the workload really uses (verify_cluster), switch the workloads
// through the API in one reviewed, reversible step (switch_workloads: the original images recorded
// in annotations), and undo it (roll_back). The workloads are those the discovery finds that no
// controller owns (the Deployment, not its ReplicaSets and Pods), as `rewrite` lists them.

#include "kube/discovery.hpp"
#include "kube/workloads.hpp"
#include "migrate/config.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}
namespace http {
class Client;
}

namespace migrate {

/// images.json as the cutover reads it: normalized source -> target, for every rule whose value
/// is a non-empty string (the file `config` writes). ConfigError for a file that is not an object.
std::map<std::string, std::string> read_targets(const nlohmann::json& doc, const std::string& file);

/// One image of a workload, checked.
struct ContainerCheck {
  std::string container, container_type, env_name;
  std::string image;           ///< as written in the spec
  std::string target;          ///< what images.json maps it to ("" = not in images.json)
  std::string target_digest;   ///< the target's digest (migration credentials)
  std::string expected_digest; ///< what it must equal: the source's, or what the pod runs now
  std::string expected_from;   ///< "source", "pinned", "running pod"
  std::vector<std::string> platforms; ///< the target's ("linux/amd64"...)
  std::vector<std::string> problems;  ///< why it is NOT READY
  std::vector<std::string> notes;     ///< worth saying, not blocking (an operator's RELATED_IMAGE)
};

/// One workload, checked.
struct WorkloadCheck {
  std::string kind, ns, name;
  std::vector<ContainerCheck> containers;
  std::vector<std::string> pull_secrets; ///< the secrets its pods pull with ("ns/name")
  std::string pull_secrets_from;         ///< "pod spec", "service account NAME", or "none (anonymous)"
  /// The permissions the check was refused (403): "get secrets in namespace shop", "list nodes".
  std::vector<std::string> cannot_check = {};

  enum class Status {
    ready,        ///< every image images.json maps is checked and fine
    not_ready,    ///< a problem with an image it maps
    cannot_check, ///< no problem found, but a check was refused (403): not proven
    not_mapped,   ///< images.json maps none of its images: it stays where it is
  };
  Status status() const;
  bool ready() const { return status() == Status::ready; }
  /// Whether images.json maps (or it already runs) a target for any of its images.
  bool mapped() const;
  /// Its containers images.json does not map: they stay on their old registry ("sidecar (image)").
  std::vector<std::string> staying() const;
  std::string id() const { return kind + " " + ns + "/" + name; }
};

struct ClusterCheck {
  std::vector<WorkloadCheck> workloads;
  std::vector<std::string> node_platforms; ///< the nodes' ("linux/amd64", "linux/arm64")
  std::vector<std::string> warnings;       ///< what could not be checked, and why
  std::size_t count(WorkloadCheck::Status status) const;
  std::size_t not_ready() const { return count(WorkloadCheck::Status::not_ready); }
};

/// Checks every workload of `inventory` (the images images.json maps):
/// - the target exists at the target registry (a HEAD with the credentials of `auth`);
/// - its digest equals the source's (HEAD with `auth`), or for a pod what it runs now (imageID);
/// - it has an image for every platform of the nodes the workload may run on (Nodes' nodeInfo;
///   its nodeSelector's kubernetes.io/os and arch narrow them; without an os selector, the Linux nodes);
/// - it is pullable with the workload's own credentials: its pod spec's imagePullSecrets, else (as
///   the ServiceAccount admission controller fills them in) its service account's, matched to the
///   registry as the kubelet matches them; a HEAD with those credentials only, anonymous when none
///   matches, with the transport settings (TLS, address, proxy) of `auth`.
ClusterCheck verify_cluster(const kube::Inventory& inventory, kube::Client& kube, http::Client& http,
                            const AuthConfig& auth, const EnvLookup& env, const std::map<std::string, std::string>& targets,
                            std::shared_ptr<spdlog::logger> log);

/// One line per workload ("READY ...", "NOT READY ...: container: reason; ...", "CANNOT CHECK ...: the
/// permissions missing", "NOT MAPPED ..."), then the summary.
std::string cluster_check_text(const ClusterCheck& check);
/// The same as JSON, for --report.
nlohmann::json cluster_check_report(const ClusterCheck& check);

struct SwitchOptions {
  bool pin_digests = false; ///< write target@sha256:... (the verified digest) instead of the tag
  bool dry_run = false;     ///< the API server checks each patch (dryRun=All) and stores nothing
  bool force = false;       ///< switch NOT READY workloads too
  std::size_t batch = 0;    ///< after every N switched workloads, wait for their rollouts (0 = do not wait)
  std::chrono::seconds rollout_timeout{300};
  std::chrono::milliseconds poll{1000};
  std::string who;          ///< recorded in the annotation: "user@host"
  std::string now;          ///< RFC 3339 time recorded in the annotation
};

/// What happened to each workload; `failed` counts those refused, failed, or left out after a failed rollout.
struct CutoverResult {
  std::vector<std::string> lines;
  std::size_t changed = 0, unchanged = 0, manual = 0, failed = 0;
  std::size_t not_mapped = 0; ///< workloads images.json maps none of: left where they are
};

/// Points each workload of `check` at its targets: a strategic merge patch per object that names
/// the resourceVersion it read (409: read again and retry, up to 3 times), sets the images of its
/// containers by name, and records the images it replaced in image-migrator/original-images (and
/// the new ones, who and when). Refuses NOT READY workloads unless `force`, and objects whose image
/// changed since the discovery. Jobs, PodTemplates, custom resources, ephemeral containers, image
/// volumes and RELATED_IMAGE variables are listed as manual. Lines are handed to `print` as they happen.
CutoverResult switch_workloads(const ClusterCheck& check, kube::Client& kube, const SwitchOptions& options,
                               const std::function<void(const std::string&)>& print);

struct RollbackOptions {
  bool dry_run = false;
  std::string kind, ns, name; ///< one workload ("" = all that were switched)
};

/// Restores the images recorded by switch_workloads on the switched objects of `inventory` (or the
/// one named; never an object a controller owns), then removes the annotations; an object whose image
/// changed since the switch, or whose annotations name a container it does not have or values that
/// are not image references, is refused (nothing of it restored). Idempotent: an object without the
/// annotation has nothing to undo.
CutoverResult roll_back(const kube::Inventory& inventory, kube::Client& kube, const RollbackOptions& options,
                        const std::function<void(const std::string&)>& print);

} // namespace migrate
