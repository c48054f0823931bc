#pragma once
// Registry authentication: credentials that cannot be printed, WWW-Authenticate parsing, and the
// Docker token flow (GET with Basic/anonymous, OAuth2 POST with a refresh token), tokens cached per
// scope and renewed before they expire or when the registry answers 401.

#include "http/client.hpp"

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace spdlog {
class logger;
}

namespace registry {

using http::Result;
using http::Status;

/// Username/password or identity (refresh) token. Deliberately has no to_string or stream operator:
/// the only ways out are the header builders and secret(), which callers must not log.
class Credentials {
public:
  Credentials() = default;
  Credentials(std::string username, std::string password)
      : m_username(std::move(username)), m_secret(std::move(password)) {}
  static Credentials identity_token(std::string token) {
    Credentials c;
    c.m_secret = std::move(token);
    c.m_identity_token = true;
    return c;
  }

  bool anonymous() const { return m_secret.empty() && m_username.empty(); }
  bool is_identity_token() const { return m_identity_token; }
  const std::string& username() const { return m_username; }
  const std::string& secret() const { return m_secret; }
  /// "Basic base64(user:password)".
  std::string basic_header() const;

private:
  std::string m_username;
  std::string m_secret;
  bool m_identity_token = false;
};

/// One challenge of a WWW-Authenticate header; parameter names are lower-cased.
struct Challenge {
  std::string scheme; ///< lower-cased: "basic", "bearer"
  std::map<std::string, std::string> params;
};

/// Parses a WWW-Authenticate value holding one or more challenges (RFC 7235 with quoted strings).
Result<std::vector<Challenge>> parse_challenges(std::string_view header);

/// Authorisation for one registry, shared by all threads talking to it.
class Authenticator {
public:
  Authenticator(http::Client& client, std::string registry, Credentials credentials, http::Tls tls,
                bool insecure, std::shared_ptr<spdlog::logger> log);

  /// The registry's route (proxy, CONNECT_TO entries): token requests take it too.
  void set_route(std::string proxy, std::vector<std::string> connect_to) {
    m_proxy = std::move(proxy);
    m_connect_to = std::move(connect_to);
  }

  /// Adds an Authorization header for `scope` (space-separated scopes) when one is known.
  void authorize(http::Request& request, const std::string& scope);

  /// After a 401 to a request that carried `sent` as its Authorization header ("" = none): learns
  /// the challenge and fetches a fresh token for `scope`. Fails when retrying cannot help (Basic
  /// credentials that were sent and refused, no credentials where some are required).
  Status on_unauthorized(const http::Response& response, const std::string& scope, const std::string& sent);

  /// The error for a 401 that persists after re-authenticating: names the user and, for
  /// insufficient_scope, the access that was refused.
  http::Error rejected(const http::Response& response, const std::string& scope, const std::string& what) const;

private:
  struct Token {
    std::string value;
    std::chrono::steady_clock::time_point renew_at;
  };
  Result<Token> fetch_token(const std::string& scope);

  http::Client& m_client;
  std::string m_registry;
  Credentials m_credentials;
  http::Tls m_tls;
  bool m_insecure;
  std::shared_ptr<spdlog::logger> m_log;
  std::string m_proxy;
  std::vector<std::string> m_connect_to;

  mutable std::mutex m_mutex;
  std::string m_scheme; ///< "" until the first challenge, then "basic" or "bearer"
  std::string m_realm;
  std::string m_service;
  std::string m_refresh_token; ///< from an OAuth2 answer, used for later POSTs
  std::map<std::string, Token> m_tokens;
};

} // namespace registry
