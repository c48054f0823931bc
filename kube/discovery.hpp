#pragma once
// Finds every image a cluster uses: lists pods, replicationcontrollers, podtemplates, deployments,
// statefulsets, daemonsets, replicasets, jobs and cronjobs, and custom resources named with
// --extra-resource (concurrently, paginated, restarting on 410 Gone, tolerating 403 on one kind),
// and reads containers, initContainers, ephemeralContainers, image volumes, operators' RELATED_IMAGE_*
// environment variables, imagePullSecrets and service accounts, and the digests pods actually run.

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
  std::string container;      ///< container (or image volume) name; for "field", the field path
  /// "container", "initContainer", "ephemeralContainer", "imageVolume", "env" (a RELATED_IMAGE_*
  /// variable of `container`, the OLM convention: the operator runs that image itself), "field" (an
  /// --extra-resource field holding an image)
  std::string container_type;
  std::vector<std::string> pull_secrets;
  bool owned = false; ///< has ownerReferences: a controller (Deployment, CronJob...) manages it
  std::string env_name = {};        ///< for "env": the variable
  std::string service_account = {}; ///< the pod spec's serviceAccountName ("default" if unset)
  std::map<std::string, std::string> node_selector = {}; ///< its kubernetes.io/os and /arch, when set
};

/// An object `rewrite --apply` switched (it carries image-migrator/original-images).
struct SwitchedObject {
  std::string kind, ns, name;
  /// Has ownerReferences: a copy a controller made (the Deployment controller copies a Deployment's
  /// annotations onto its ReplicaSets); rollback restores the owner, never the copy.
  bool owned = false;
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
  std::size_t invalid_names = 0; ///< objects, containers or variables left out: their names cannot be names
  bool none_served = false;   ///< no kind is served at all (404 for each): not a Kubernetes API?
  std::vector<std::string> missing_namespaces;   ///< asked for with -n, and the API server says 404
  std::vector<std::string> unchecked_namespaces; ///< asked for, but get on namespaces is not allowed
  std::size_t excluded = 0;                      ///< objects left out by exclude_namespaces
  std::vector<SwitchedObject> switched;          ///< objects with image-migrator/original-images
};

/// A custom resource to read images from: --extra-resource group/version/resource=field.path, where
/// the path names a pod template (`spec.template`), a pod spec (anything with `containers`) or an
/// image string; `name[]` goes through every element of a list (`spec.components[].image`).
struct ExtraResource {
  std::string group, version, resource;
  std::vector<std::string> path; ///< "spec", "template"; "components[]" for each element
  std::string text;              ///< as given, for messages
  /// The kind its objects are reported as: "rollouts.argoproj.io".
  std::string kind() const { return group.empty() ? resource : resource + "." + group; }
};

/// Parses "argoproj.io/v1alpha1/rollouts=spec.template" ("v1/..." or "core/v1/..." for the core group).
Result<ExtraResource> parse_extra_resource(const std::string& text);

/// The annotations rewrite --apply writes and rollback reads.
inline constexpr const char* original_images_annotation = "image-migrator/original-images";
inline constexpr const char* switched_images_annotation = "image-migrator/switched-images";
inline constexpr const char* switched_by_annotation = "image-migrator/switched"; ///< when, who

struct DiscoverOptions {
  std::vector<std::string> namespaces;         ///< empty = all namespaces
  std::vector<std::string> exclude_namespaces; ///< left out (of all, or of `namespaces`)
  std::vector<ExtraResource> extra;            ///< custom resources read too
  int page_size = 500;
};

/// Whether `name` can be a namespace (a DNS-1123 label: lower-case letters, digits and '-', at most
/// 63 characters, starting and ending with a letter or digit).
bool valid_namespace_name(const std::string& name);

/// Lists every workload kind and collects its images.
Result<Inventory> discover(Client& client, const DiscoverOptions& options, std::shared_ptr<spdlog::logger> log);

/// Adds the images of one object of `kind` (exposed for unit tests).
void collect_images(const nlohmann::json& object, const std::string& kind, Inventory& out);

/// Adds the images an object of a custom resource holds at `extra`'s path.
void collect_extra_images(const nlohmann::json& object, const ExtraResource& extra, Inventory& out);

/// The Docker config ("auths" object) held by an image pull secret: kubernetes.io/dockerconfigjson
/// (.dockerconfigjson) or the legacy kubernetes.io/dockercfg (.dockercfg). Needs get on secrets.
Result<nlohmann::json> pull_secret_auths(Client& client, const std::string& ns, const std::string& name);

/// The repository digest inside a status imageID in any of its real-world forms
/// ("docker-pullable://repo@sha256:..", "repo@sha256:.."); "" for bare image IDs ("sha256:..",
/// "docker://sha256:..") which name a config, not a manifest.
std::string digest_from_image_id(const std::string& image_id);

} // namespace kube
