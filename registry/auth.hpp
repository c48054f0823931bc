#pragma once
// Registry authentication: credentials that cannot be printed, WWW-Authenticate parsing, and the
// Docker token flow (GET with Basic/anonymous, OAuth2 POST with a refresh token), tokens cached per
// scope and renewed before they expire or when the registry answers 401.

#include "http/client.hpp"

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
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

  /// Adds an Authorization header for `scope` (space-separated scopes) when one is known, fetching
  /// a token first when the registry wants one and none is valid. Threads fetch tokens for
  /// different scopes side by side; those wanting the same scope wait for one fetch.
  void authorize(http::Request& request, const std::string& scope);
  /// authorize() that never fetches: false when it would have had to (the request is then left as
  /// it was). For a thread that must not wait on a token server.
  bool authorize_known(http::Request& request, const std::string& scope);
  /// Whether the registry has asked for Bearer tokens (known after its first 401).
  bool wants_tokens() const {
    std::lock_guard lock(m_mutex);
    return m_scheme == "bearer";
  }

  /// After a 401 to a request that carried `sent` as its Authorization header ("" = none): learns
  /// the challenge and gets a token for `scope` other than the refused one (another thread's
  /// fresh one, or a new fetch). Fails when retrying cannot help (Basic
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
  struct Answer { ///< what a token server said: a token, maybe a refresh token for later requests
    Token token;
    std::string refresh_token;
    long expires_in = 0;
  };
  bool attach_known(http::Request& request, const std::string& scope) const; // under m_mutex
  /// A valid token for `scope` other than the one a 401 just `refused` (an Authorization value),
  /// fetching one if need be: called with `lock` held, which it releases while the token server
  /// answers.
  Result<Token> token_for(std::unique_lock<std::mutex>& lock, const std::string& scope, const std::string& refused = "");
  Result<http::Request> token_request(const std::string& scope) const; // under m_mutex
  Result<Answer> read_token_answer(const Result<http::Response>& response, const std::string& realm) const;

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
  std::set<std::string> m_fetching;  ///< scopes a thread is fetching a token for
  std::condition_variable m_fetched; ///< a fetch ended
};

} // namespace registry
