#include "kube/client.hpp"

#include "http/base64.hpp"
#include "http/process.hpp"
#include "http/url.hpp"
#include "util/env.hpp"
#include "util/json.hpp"
#include "util/time.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>


#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>


namespace kube {

namespace {

http::Error auth_error(const std::string& message) { return http::make_error(http::ErrorKind::unauthorized, message); }

std::string first_line(const std::string& s) {
  auto t = s.substr(0, s.find('\n'));
  return t.size() > 300 ? t.substr(0, 300) : t;
}

} // namespace


Result<ExecCredential> run_exec_plugin(const ExecConfig& exec, const RestConfig& cluster) {
  std::string what = "exec credential plugin " + exec.command;
  nlohmann::json info = {{"apiVersion", exec.api_version}, {"kind", "ExecCredential"}, {"spec", {{"interactive", false}}}};
  if (exec.provide_cluster_info) {
    nlohmann::json c = {{"server", cluster.server}};
    if (!cluster.tls.ca_pem.empty())
      c["certificate-authority-data"] = http::base64_encode(cluster.tls.ca_pem);
    if (!cluster.tls.verify)
      c["insecure-skip-tls-verify"] = true;
    if (!cluster.tls.server_name.empty())
      c["tls-server-name"] = cluster.tls.server_name;
    if (!cluster.proxy.empty())
      c["proxy-url"] = cluster.proxy;
    info["spec"]["cluster"] = c;
  }
  std::vector<std::pair<std::string, std::string>> overrides(exec.env.begin(), exec.env.end());
  overrides.emplace_back("KUBERNETES_EXEC_INFO", info.dump());
  const auto env = util::child_environment(overrides);

  auto run = http::run_process(exec.command, exec.command, exec.args, env, "", std::chrono::seconds(60));
  if (!run) {
    auto e = run.error();
    if (!exec.install_hint.empty())
      e.message += " (" + first_line(exec.install_hint) + ")";
    return auth_error(what + ": " + e.message);
  }
  if (run->status != 0)
    return auth_error(what + " exited with " + std::to_string(run->status) +
                      (run->err.empty() ? "" : ": " + first_line(run->err)));
  ExecCredential cred;
  try {
    auto j = util::parse_json(run->out);
    if (j.value("kind", "") != "ExecCredential")
      return auth_error(what + ": output is not an ExecCredential");
    if (j.value("apiVersion", "") != exec.api_version)
      return auth_error(what + ": answered apiVersion \"" + j.value("apiVersion", "") + "\", expected \"" + exec.api_version + "\"");
    const auto& st = j.at("status");
    cred.token = st.value("token", "");
    cred.client_certificate_data = st.value("clientCertificateData", "");
    cred.client_key_data = st.value("clientKeyData", "");
    if (st.contains("expirationTimestamp") && st["expirationTimestamp"].is_string()) {
      cred.expires = util::parse_rfc3339_time(st["expirationTimestamp"].get<std::string>());
      if (!cred.expires)
        return auth_error(what + ": invalid expirationTimestamp");
    }
  } catch (const nlohmann::json::exception&) {
    return auth_error(what + ": output is not a valid ExecCredential JSON document");
  }
  if (cred.token.empty() && (cred.client_certificate_data.empty() || cred.client_key_data.empty()))
    return auth_error(what + ": the ExecCredential has neither a token nor a client certificate and key");
  if (cred.client_certificate_data.empty() != cred.client_key_data.empty())
    return auth_error(what + ": the ExecCredential must have both clientCertificateData and clientKeyData");
  return cred;
}

std::string status_message(const http::Response& response) {
  try {
    auto j = util::parse_json(response.body);
    if (j.is_object() && j.value("kind", "") == "Status") {
      std::string reason = j.value("reason", "");
      std::string message = j.value("message", "");
      return reason.empty() ? message : reason + ": " + message;
    }
  } catch (const nlohmann::json::exception&) {
  }
  return first_line(response.body);
}

Client::Client(http::Client& http, RestConfig config, std::shared_ptr<spdlog::logger> log)
    : m_http(http), m_config(std::move(config)), m_log(std::move(log)) {}

http::Status Client::authorize(http::Request& r, std::optional<int> stale, int& generation) {
  std::lock_guard lock(m_mutex);
  const auto& as = m_config.impersonate;
  if (!as.user.empty())
    r.headers.emplace_back("Impersonate-User", as.user);
  if (!as.uid.empty())
    r.headers.emplace_back("Impersonate-Uid", as.uid);
  for (const auto& g : as.groups)
    r.headers.emplace_back("Impersonate-Group", g);
  for (const auto& [key, values] : as.extra)
    for (const auto& v : values)
      r.headers.emplace_back("Impersonate-Extra-" + http::url_encode(key), v);
  if (m_config.exec) {
    bool expired = m_exec_credential && m_exec_credential->expires &&
                   std::chrono::system_clock::now() >= *m_exec_credential->expires;
    if (!m_exec_credential || expired || (stale && *stale == m_generation)) {
      auto cred = run_exec_plugin(*m_config.exec, m_config);
      if (!cred)
        return cred.error();
      m_exec_credential = std::move(*cred);
      ++m_generation;
    }
    generation = m_generation;
    if (!m_exec_credential->token.empty())
      r.headers.emplace_back("Authorization", "Bearer " + m_exec_credential->token);
    if (!m_exec_credential->client_certificate_data.empty()) {
      r.tls.cert_pem = m_exec_credential->client_certificate_data;
      r.tls.key_pem = m_exec_credential->client_key_data;
      r.tls.cert_file.clear();
      r.tls.key_file.clear();
    }
    return {};
  }
  if (!m_config.token_file.empty()) {
    // Read at every request: projected service-account tokens rotate underneath us.
    std::ifstream in(m_config.token_file);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string token = ss.str();
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' '))
      token.pop_back();
    if (token.empty() && m_config.token.empty())
      return auth_error("reading token file " + m_config.token_file + ": empty or unreadable");
    r.headers.emplace_back("Authorization", "Bearer " + (token.empty() ? m_config.token : token));
  } else if (!m_config.token.empty()) {
    r.headers.emplace_back("Authorization", "Bearer " + m_config.token);
  } else if (!m_config.username.empty()) {
    r.headers.emplace_back("Authorization", "Basic " + http::base64_encode(m_config.username + ":" + m_config.password));
  }
  return {};
}

Result<http::Response> Client::get(const std::string& path) { return send("GET", path); }

Result<http::Response> Client::send(const std::string& method, const std::string& path, const std::string& body,
                                    const std::string& content_type) {
  std::optional<int> stale;
  int generation = 0;
  for (int attempt = 0;; ++attempt) {
    http::Request r;
    r.method = method;
    r.url = m_config.server + path;
    r.tls = m_config.tls;
    r.proxy = m_config.proxy;
    r.headers.emplace_back("Accept", "application/json");
    if (!content_type.empty()) {
      r.headers.emplace_back("Content-Type", content_type);
      r.body = body;
    }
    if (auto st = authorize(r, stale, generation); !st)
      return st.error();
    auto resp = m_http.send(r);
    if (!resp)
      return resp.error().context("kubernetes API " + m_config.server);
    // The request is sent again only after a 401, which the API server answers before doing anything.
    if (resp->status == 401 && attempt == 0 && (m_config.exec || !m_config.token_file.empty())) {
      m_log->debug("kubernetes API answered 401, refreshing credentials");
      stale = generation;
      continue;
    }
    return resp;
  }
}

} // namespace kube
