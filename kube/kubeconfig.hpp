#pragma once
// kubeconfig loading as kubectl does it: KUBECONFIG lists several files merged by "first file that
// sets a key wins", relative paths resolved against the file that defined them, validation errors
// as one line, and the in-cluster service account as the last resort.

#include "http/client.hpp"
#include "util/env.hpp"

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kube {

using http::Result;

/// client.authentication.k8s.io exec credential plugin.
struct ExecConfig {
  std::string api_version;
  std::string command; ///< resolved against the kubeconfig's directory when it contains a '/'
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;
  bool provide_cluster_info = false;
  std::string install_hint;
};

struct Cluster {
  std::string server;
  std::string certificate_authority; ///< path (resolved)
  std::string certificate_authority_data; ///< PEM bytes (decoded from base64)
  bool insecure_skip_tls_verify = false;
  std::string tls_server_name;
  std::string proxy_url;
};

/// `as`, `as-uid`, `as-groups`, `as-user-extra`: act as another user (Impersonate-* headers).
struct Impersonation {
  std::string user, uid;
  std::vector<std::string> groups;
  std::map<std::string, std::vector<std::string>> extra;
  bool empty() const { return user.empty() && uid.empty() && groups.empty() && extra.empty(); }
};

struct User {
  std::string client_certificate, client_key;           ///< paths (resolved)
  std::string client_certificate_data, client_key_data; ///< PEM bytes
  std::string token, token_file;
  std::string username, password;
  std::optional<ExecConfig> exec;
  std::string auth_provider;                            ///< name of a legacy auth-provider
  std::map<std::string, std::string> auth_provider_config;
  Impersonation impersonate;
};

struct Context {
  std::string cluster, user, ns;
};

struct Kubeconfig {
  std::map<std::string, Cluster> clusters;
  std::map<std::string, User> users;
  std::map<std::string, Context> contexts;
  std::string current_context;
};

/// Loads and merges kubeconfig files in order (missing files in a KUBECONFIG list are skipped, as
/// kubectl does; an explicitly named missing file is an error).
Result<Kubeconfig> load_kubeconfig(const std::vector<std::string>& files, bool all_must_exist);

/// Parses one kubeconfig document; relative paths are resolved against `dir`.
Result<Kubeconfig> parse_kubeconfig(const std::string& text, const std::string& name, const std::string& dir);

/// Everything needed to talk to one API server.
struct RestConfig {
  std::string server; ///< https://host:port (no trailing slash)
  http::Tls tls;
  std::string proxy;
  std::string token;
  std::string token_file; ///< re-read when it changes (service-account rotation)
  std::string username, password;
  std::optional<ExecConfig> exec;
  Impersonation impersonate;
  std::string ns;      ///< the context's namespace (informational: not a filter)
  std::string source;  ///< where it came from, for messages: "context kind-test in /path" or "in-cluster"
};

/// Where to look for configuration.
struct LoadOptions {
  std::string kubeconfig; ///< -k/--kubeconfig; empty = KUBECONFIG, ~/.kube/config, in-cluster
  std::string context;    ///< --context; empty = current-context
  std::string kubeconfig_env; ///< value of KUBECONFIG
  std::string home;           ///< $HOME
  std::string in_cluster_dir = "/var/run/secrets/kubernetes.io/serviceaccount";
  std::string service_host, service_port; ///< KUBERNETES_SERVICE_HOST / _PORT
};

/// LoadOptions from the environment `env` (KUBECONFIG, HOME, KUBERNETES_SERVICE_*, and
/// IMAGE_MIGRATOR_SERVICEACCOUNT_DIR to override the service-account directory in tests).
LoadOptions options_from_environment(const util::EnvLookup& env);

/// Picks and validates the context and turns it into a RestConfig.
Result<RestConfig> rest_config(const LoadOptions& options);

/// What a RestConfig will do, without secrets: server, namespace, auth method, SHA-256 of the CA and
/// client certificate, TLS options. For `config --print-config` and for comparing with kubectl.
nlohmann::json describe(const RestConfig& config);

/// Validates and converts one context of a loaded kubeconfig.
Result<RestConfig> rest_config_for(const Kubeconfig& config, const std::string& context, const std::string& source);

} // namespace kube
