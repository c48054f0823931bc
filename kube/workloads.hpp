#pragma once
// The objects the cutover reads and changes: one object by kind and name, a strategic merge patch
// of it (preconditioned on the resourceVersion that was read), the nodes' platforms, a service
// account's pull secrets, and whether a workload's rollout is done, judged as `kubectl rollout status`
// judges it.

#include "kube/client.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace kube {

/// A built-in kind the discovery lists: where its objects are and where their pod spec is.
struct KindInfo {
  std::string kind;          ///< "Deployment"
  std::string group_version; ///< "apps/v1"
  std::string plural;        ///< "deployments"
  std::vector<std::string> pod_spec; ///< path to the pod spec: {"spec", "template", "spec"}
};

/// The built-in kind named `kind` ("Deployment", or kubectl's "deployment", "deploy"..., also with
/// its group as kubectl takes it: "deployment.apps", "deployments.v1.apps"); nullptr otherwise.
const KindInfo* kind_info(const std::string& kind);

/// The kubectl name closest to an unknown `kind` ("deploymnet" -> "deployment"); "" when none is close.
std::string suggest_kind(const std::string& kind);

/// "/apis/apps/v1/namespaces/NS/deployments/NAME" (names URL-encoded).
std::string object_path(const KindInfo& kind, const std::string& ns, const std::string& name);

/// GETs one object. A 404 is an error of kind not_found; 403 unauthorized; both name the object.
Result<nlohmann::json> get_object(Client& client, const KindInfo& kind, const std::string& ns, const std::string& name);

/// PATCHes one object with a strategic merge patch (`fieldManager=image-migrator`; `dry_run` sends
/// dryRun=All: validated, answered, not stored). The answer's object, or an error whose status is the
/// API server's (403 forbidden, 409 conflict, 422 invalid) with its message.
Result<nlohmann::json> patch_object(Client& client, const KindInfo& kind, const std::string& ns, const std::string& name,
                                    const nlohmann::json& patch, bool dry_run);

/// The pod spec of an object of `kind` (nullptr when it has none).
const nlohmann::json* pod_spec_of(const nlohmann::json& object, const KindInfo& kind);

/// One node's platform, from status.nodeInfo (else the kubernetes.io/os and /arch labels).
struct NodePlatform {
  std::string name, os, architecture;
  /// Why its platform is not used (os or architecture not [a-z0-9_.-]+, escaped); os and
  /// architecture are then empty.
  std::string problem = {};
};

/// Every node. 403 is an error of kind unauthorized (the caller says what it cannot check).
Result<std::vector<NodePlatform>> list_nodes(Client& client);

/// The imagePullSecrets of a service account; an absent account has none (404 is not an error).
Result<std::vector<std::string>> service_account_pull_secrets(Client& client, const std::string& ns,
                                                              const std::string& name);

/// Where a rollout stands, as kubectl rollout status reads the workload's status.
struct RolloutState {
  bool done = false;
  bool failed = false;  ///< it will not finish (ProgressDeadlineExceeded, a container that cannot pull)
  std::string message;  ///< what it waits for, or why it failed
};

/// The rollout state of an object as just read (Deployment, StatefulSet, DaemonSet, Pod; every other
/// kind has nothing to wait for: done).
RolloutState rollout_state(const nlohmann::json& object, const KindInfo& kind);

} // namespace kube
