#pragma once
// A minimal Kubernetes API client: requests with the credentials a kubeconfig or the in-cluster service
// account provides (bearer token, token file re-read on rotation, basic auth, client certificates,
// exec credential plugins cached until they expire and re-run after a 401).

#include "http/client.hpp"
#include "kube/kubeconfig.hpp"

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace spdlog {
class logger;
}

namespace kube {

/// What an exec plugin returned.
struct ExecCredential {
  std::string token;
  std::string client_certificate_data;
  std::string client_key_data;
  std::optional<std::chrono::system_clock::time_point> expires;
};

/// Runs an exec credential plugin (command, args, env, KUBERNETES_EXEC_INFO) and parses its answer.
Result<ExecCredential> run_exec_plugin(const ExecConfig& exec, const RestConfig& cluster);

class Client {
public:
  Client(http::Client& http, RestConfig config, std::shared_ptr<spdlog::logger> log);

  /// GET `path` (with query) from the API server; a 401 re-reads the token file / re-runs the exec
  /// plugin once. Non-2xx statuses are returned as responses for the caller to interpret.
  Result<http::Response> get(const std::string& path);

  /// Any request (POST, PUT, PATCH, DELETE ...): `body` is sent with `content_type` when that is
  /// not empty. Same credentials and 401 handling as get().
  Result<http::Response> send(const std::string& method, const std::string& path, const std::string& body = "",
                              const std::string& content_type = "");

  const RestConfig& config() const { return m_config; }

private:
  /// Adds credentials; `stale` names the exec credential generation a 401 was answered with, so
  /// concurrent requests that all saw the 401 re-run the plugin once, not once each.
  http::Status authorize(http::Request& request, std::optional<int> stale, int& generation);

  http::Client& m_http;
  RestConfig m_config;
  std::shared_ptr<spdlog::logger> m_log;
  std::mutex m_mutex;
  std::optional<ExecCredential> m_exec_credential;
  int m_generation = 0; ///< incremented at every exec plugin run
};

/// "reason: message" of a Kubernetes Status body, or the trimmed body.
std::string status_message(const http::Response& response);

} // namespace kube
