#pragma once
// Finds every image a cluster uses: lists pods, replicationcontrollers, podtemplates, deployments,
// statefulsets, daemonsets, replicasets, jobs and cronjobs (concurrently, paginated, restarting on
// 410 Gone, tolerating 403 on one kind), and reads containers, initContainers, ephemeralContainers,
// image volumes, imagePullSecrets and the digests pods actually run.

#include "kube/client.hpp"

#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace kube {

/// One place an image is referenced.
struct ImageUse {
  std::string image;          ///< as written in the spec
  std::string kind;           ///< "Deployment", "Pod", ...
  std::string ns;
  std::string name;
  std::string container;      ///< container (or image volume) name
  std::string container_type; ///< "container", "initContainer", "ephemeralContainer", "imageVolume"
  std::vector<std::string> pull_secrets;
  bool owned = false; ///< has ownerReferences: a controller (Deployment, CronJob...) manages it
};

/// What a pod's status says it runs.
struct RunningImage {
  std::string ns, pod, container;
  std::string spec_image;   ///< the image the container spec asked for
  std::string status_image; ///< status.image as the runtime reports it
  std::string image_id;     ///< status.imageID, raw
  std::string digest;       ///< the repository digest in image_id ("sha256:..."), "" when it has none
};

struct Inventory {
  std::vector<ImageUse> uses;
  std::vector<RunningImage> running;
  std::vector<std::string> warnings;          ///< kinds that could not be listed, and why
  std::map<std::string, std::size_t> objects; ///< objects listed per kind
  std::size_t forbidden = 0;  ///< lists refused (403): their images may be missing
  bool none_served = false;   ///< no kind is served at all (404 for each): not a Kubernetes API?
  std::vector<std::string> missing_namespaces;   ///< asked for with -n, and the API server says 404
  std::vector<std::string> unchecked_namespaces; ///< asked for, but get on namespaces is not allowed
  std::size_t excluded = 0;                      ///< objects left out by exclude_namespaces
};

struct DiscoverOptions {
  std::vector<std::string> namespaces;         ///< empty = all namespaces
  std::vector<std::string> exclude_namespaces; ///< left out (of all, or of `namespaces`)
  int page_size = 500;
};

/// Whether `name` can be a namespace (a DNS-1123 label: lower-case letters, digits and '-', at most
/// 63 characters, starting and ending with a letter or digit).
bool valid_namespace_name(const std::string& name);

/// Lists every workload kind and collects its images.
Result<Inventory> discover(Client& client, const DiscoverOptions& options, std::shared_ptr<spdlog::logger> log);

/// Adds the images of one object of `kind` (exposed for unit tests).
void collect_images(const nlohmann::json& object, const std::string& kind, Inventory& out);

/// The Docker config ("auths" object) held by an image pull secret: kubernetes.io/dockerconfigjson
/// (.dockerconfigjson) or the legacy kubernetes.io/dockercfg (.dockercfg). Needs get on secrets.
Result<nlohmann::json> pull_secret_auths(Client& client, const std::string& ns, const std::string& name);

/// The repository digest inside a status imageID in any of its real-world forms
/// ("docker-pullable://repo@sha256:..", "repo@sha256:.."); "" for bare image IDs ("sha256:..",
/// "docker://sha256:..") which name a config, not a manifest.
std::string digest_from_image_id(const std::string& image_id);

} // namespace kube
