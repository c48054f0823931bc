#include "registry/auth.hpp"

#include "http/base64.hpp"
#include "http/url.hpp"
#include "util/json.hpp"
#include "util/text.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

namespace registry {

namespace {

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~/").find(c) != std::string_view::npos;
}


http::Error auth_error(const std::string& registry, const std::string& why, long status = 0) {
  return http::make_error(http::ErrorKind::unauthorized, "authenticating to " + registry + ": " + why, status);
}

} // namespace

std::string Credentials::basic_header() const { return "Basic " + http::base64_encode(m_username + ":" + m_secret); }

Result<std::vector<Challenge>> parse_challenges(std::string_view h) {
  std::vector<Challenge> out;
  std::size_t i = 0;
  auto skip = [&](std::string_view set) {
    while (i < h.size() && set.find(h[i]) != std::string_view::npos)
      ++i;
  };
  auto token = [&] {
    std::size_t start = i;
    while (i < h.size() && is_token_char(h[i]))
      ++i;
    return std::string(h.substr(start, i - start));
  };
  auto invalid = [&](const std::string& why) {
    return http::make_error(http::ErrorKind::invalid, "parsing WWW-Authenticate header: " + why);
  };
  while (true) {
    skip(" \t,");
    if (i >= h.size())
      break;
    std::string scheme = token();
    if (scheme.empty())
      return invalid("unexpected character '" + util::escape_control(std::string(1, h[i])) + "' at offset " + std::to_string(i));
    Challenge c;
    c.scheme = http::to_lower(scheme);
    while (true) {
      skip(" \t");
      std::size_t param_start = i;
      std::string name = token();
      skip(" \t");
      if (name.empty() || i >= h.size() || h[i] != '=') {
        // Not a parameter: the start of the next challenge (or a token68 we ignore).
        i = name.empty() ? i : param_start;
        if (!name.empty())
          break;
        if (i < h.size() && h[i] == ',') {
          ++i;
          continue;
        }
        break;
      }
      ++i; // '='
      skip(" \t");
      std::string value;
      if (i < h.size() && h[i] == '"') {
        ++i;
        bool closed = false;
        while (i < h.size()) {
          char ch = h[i++];
          if (ch == '\\' && i < h.size()) {
            value += h[i++];
          } else if (ch == '"') {
            closed = true;
            break;
          } else {
            value += ch;
          }
        }
        if (!closed)
          return invalid("unterminated quoted string for parameter \"" + util::escape_control(name.substr(0, 100)) + "\"");
      } else {
        value = token();
        while (i < h.size() && h[i] == '=') // token68 padding
          value += h[i++];
      }
      c.params[http::to_lower(name)] = value;
      skip(" \t");
      if (i < h.size() && h[i] == ',') {
        ++i;
        continue;
      }
      if (i >= h.size())
        break;
    }
    out.push_back(std::move(c));
  }
  if (out.empty())
    return invalid("no challenge");
  return out;
}

Authenticator::Authenticator(http::Client& client, std::string registry, Credentials credentials, http::Tls tls,
                             bool insecure, std::shared_ptr<spdlog::logger> log)
    : m_client(client), m_registry(std::move(registry)), m_credentials(std::move(credentials)),
      m_tls(std::move(tls)), m_insecure(insecure), m_log(std::move(log)) {}

bool Authenticator::attach_known(http::Request& request, const std::string& scope) const {
  if (m_scheme == "basic") {
    if (!m_credentials.anonymous() && !m_credentials.is_identity_token())
      request.headers.emplace_back("Authorization", m_credentials.basic_header());
    return true;
  }
  if (m_scheme != "bearer")
    return true; // no challenge seen yet: nothing to add
  auto it = m_tokens.find(scope);
  // Renewed ahead of expiry, so that long runs do not meet a 401 in the middle of an upload.
  if (it == m_tokens.end() || std::chrono::steady_clock::now() >= it->second.renew_at)
    return false;
  request.headers.emplace_back("Authorization", "Bearer " + it->second.value);
  return true;
}

bool Authenticator::authorize_known(http::Request& request, const std::string& scope) {
  std::lock_guard lock(m_mutex);
  return attach_known(request, scope);
}

void Authenticator::authorize(http::Request& request, const std::string& scope) {
  std::unique_lock lock(m_mutex);
  if (attach_known(request, scope))
    return;
  auto token = token_for(lock, scope);
  if (token) {
    request.headers.emplace_back("Authorization", "Bearer " + token->value);
  } else if (auto it = m_tokens.find(scope); it != m_tokens.end()) {
    // Renewal failed: the old token may still be accepted; if not, the 401 explains.
    request.headers.emplace_back("Authorization", "Bearer " + it->second.value);
  }
}

Result<Authenticator::Token> Authenticator::token_for(std::unique_lock<std::mutex>& lock, const std::string& scope,
                                                      const std::string& refused) {
  auto usable = [&](const Token& t) {
    return std::chrono::steady_clock::now() < t.renew_at && "Bearer " + t.value != refused;
  };
  // One fetch per scope at a time: the others wait for it and take its token.
  while (m_fetching.count(scope))
    m_fetched.wait(lock);
  if (auto it = m_tokens.find(scope); it != m_tokens.end() && usable(it->second))
    return it->second;
  auto request = token_request(scope);
  if (!request)
    return request.error();
  const std::string realm = m_realm;
  m_fetching.insert(scope);
  Result<Answer> answer = [&] {
    lock.unlock();
    struct Relock { // however the fetch ends, the waiting threads hear of it
      std::unique_lock<std::mutex>& lock;
      Authenticator& self;
      const std::string& scope;
      ~Relock() {
        lock.lock();
        self.m_fetching.erase(scope);
        self.m_fetched.notify_all();
      }
    } relock{lock, *this, scope};
    return read_token_answer(m_client.send(*request), realm);
  }();
  if (!answer)
    return answer.error();
  if (!answer->refresh_token.empty())
    m_refresh_token = answer->refresh_token;
  m_log->debug("registry {}: fetched token for {} (expires in {}s)", m_registry, scope, answer->expires_in);
  return m_tokens.insert_or_assign(scope, std::move(answer->token)).first->second;
}

http::Error Authenticator::rejected(const http::Response& response, const std::string& scope,
                                   const std::string& what) const {
  std::lock_guard lock(m_mutex);
  std::string user = m_credentials.anonymous() ? std::string("anonymous") : "user \"" + m_credentials.username() + "\"";
  std::string error;
  if (auto challenges = parse_challenges(response.header("www-authenticate")))
    for (const auto& c : *challenges)
      if (auto it = c.params.find("error"); it != c.params.end())
        error = it->second;
  std::string why;
  if (error == "insufficient_scope")
    why = user + " is not allowed " + scope + " (the registry granted less than that)";
  else if (m_scheme == "basic" && !m_credentials.anonymous())
    why = "username or password rejected for " + user;
  else if (m_credentials.anonymous())
    why = "credentials required (none in the auth file or in Docker's config.json)";
  else
    why = "the registry refused the token issued to " + user + " for " + scope;
  return http::make_error(http::ErrorKind::unauthorized, what + ": " + why + " (HTTP " + std::to_string(response.status) + ")",
                          response.status);
}

Status Authenticator::on_unauthorized(const http::Response& response, const std::string& scope, const std::string& sent) {
  std::unique_lock lock(m_mutex);
  auto header = response.header("www-authenticate");
  if (header.empty())
    return auth_error(m_registry, "401 without a WWW-Authenticate challenge", response.status);
  auto challenges = parse_challenges(header);
  if (!challenges)
    return challenges.error().context("authenticating to " + m_registry);
  const Challenge* chosen = nullptr;
  for (const auto& c : *challenges)
    if (c.scheme == "bearer" && (!chosen || chosen->scheme != "bearer"))
      chosen = &c;
  for (const auto& c : *challenges)
    if (!chosen && c.scheme == "basic")
      chosen = &c;
  if (!chosen)
    return auth_error(m_registry, "unsupported authentication scheme \"" + util::escape_control((*challenges)[0].scheme.substr(0, 100)) + "\"");

  if (chosen->scheme == "basic") {
    // Another request may have learnt the scheme meanwhile: only a request that sent our Basic
    // credentials proves them wrong.
    if (sent.rfind("Basic ", 0) == 0 || m_credentials.anonymous())
      return auth_error(m_registry,
                        m_credentials.anonymous() ? "credentials required (none in the auth file or in Docker's config.json)"
                                                  : "username or password rejected for user \"" +
                                                        m_credentials.username() + "\"",
                        401);
    m_scheme = "basic";
    return {};
  }
  auto realm = chosen->params.find("realm");
  if (realm == chosen->params.end() || realm->second.empty())
    return auth_error(m_registry, "Bearer challenge without realm");
  m_scheme = "bearer";
  m_realm = realm->second;
  m_service = chosen->params.count("service") ? chosen->params.at("service") : "";
  if (auto err = chosen->params.find("error"); err != chosen->params.end() && err->second == "insufficient_scope")
    m_log->debug("registry {}: insufficient scope, renewing token for {}", m_registry, scope);
  // Another thread may have fetched a token meanwhile; any but the one refused will do.
  auto token = token_for(lock, scope, sent);
  if (!token)
    return token.error();
  return {};
}

Result<http::Request> Authenticator::token_request(const std::string& scope) const {
  http::Url realm;
  if (!http::parse_url(m_realm, realm))
    return auth_error(m_registry, "token realm is not an http(s) URL");
  if (realm.scheme == "http" && !m_insecure && !m_credentials.anonymous())
    return auth_error(m_registry, "refusing to send credentials to a plain-HTTP token realm (" +
                                      http::redact_url(m_realm) + ")");
  std::vector<std::string> scopes;
  for (std::size_t start = 0; start < scope.size();) {
    auto sp = scope.find(' ', start);
    scopes.push_back(scope.substr(start, sp - start));
    start = sp == std::string::npos ? scope.size() : sp + 1;
  }

  http::Request req;
  req.tls = m_tls;
  req.proxy = m_proxy;
  req.connect_to = m_connect_to;
  req.follow_redirects = true;
  std::string refresh = m_credentials.is_identity_token() ? m_credentials.secret() : m_refresh_token;
  if (!refresh.empty()) {
    req.method = "POST";
    req.url = m_realm;
    req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    std::string joined;
    for (const auto& s : scopes)
      joined += (joined.empty() ? "" : " ") + s;
    req.body = "grant_type=refresh_token&client_id=image-migrator&service=" + http::url_encode(m_service) +
               "&scope=" + http::url_encode(joined) + "&refresh_token=" + http::url_encode(refresh);
  } else {
    req.url = m_realm + (m_realm.find('?') == std::string::npos ? "?" : "&") + "service=" + http::url_encode(m_service);
    for (const auto& s : scopes)
      req.url += "&scope=" + http::url_encode(s);
    if (!m_credentials.anonymous())
      req.headers.emplace_back("Authorization", m_credentials.basic_header());
  }
  return req;
}

Result<Authenticator::Answer> Authenticator::read_token_answer(const Result<http::Response>& resp,
                                                               const std::string& realm) const {
  if (!resp)
    return resp.error().context("fetching token for " + m_registry);
  if (resp->status == 401 || resp->status == 403)
    return auth_error(m_registry,
                      m_credentials.anonymous()
                          ? "the token server requires credentials (none in the auth file or in Docker's config.json)"
                          : "the token server rejected the credentials of user \"" + m_credentials.username() + "\"",
                      resp->status);
  if (resp->status != 200) {
    auto e = http::make_error(http::ErrorKind::http_status,
                              "token server " + http::redact_url(realm) + " answered " + std::to_string(resp->status),
                              resp->status);
    return e.context("authenticating to " + m_registry);
  }
  Answer answer;
  long expires_in = 60;
  try {
    auto j = util::parse_json(resp->body);
    if (j.contains("token") && j["token"].is_string())
      answer.token.value = j["token"].get<std::string>();
    else if (j.contains("access_token") && j["access_token"].is_string())
      answer.token.value = j["access_token"].get<std::string>();
    if (j.contains("expires_in") && j["expires_in"].is_number_integer())
      expires_in = std::clamp<long>(j["expires_in"].get<long>(), 1, 86400); // bounded: no overflow below
    if (j.contains("refresh_token") && j["refresh_token"].is_string())
      answer.refresh_token = j["refresh_token"].get<std::string>();
  } catch (const nlohmann::json::exception&) {
    return auth_error(m_registry, "token server answered with something that is not JSON");
  }
  if (answer.token.value.empty())
    return auth_error(m_registry, "token server answered without a token");
  // It goes into an Authorization header: RFC 6750's token68 characters only, of a sane length.
  auto token68 = [](const std::string& t) {
    return !t.empty() && t.size() <= 64 * 1024 && std::all_of(t.begin(), t.end(), [](unsigned char c) {
             return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=';
           });
  };
  auto printable = [](const std::string& t) {
    return t.size() <= 64 * 1024 && std::all_of(t.begin(), t.end(), [](unsigned char c) { return c > 0x20 && c < 0x7f; });
  };
  if (!token68(answer.token.value) || !printable(answer.refresh_token))
    return auth_error(m_registry, "token server answered with a token that is not a bearer token (RFC 6750 characters)");
  // Renew when 3/4 of the lifetime has passed (at least 1 s before expiry).
  auto lifetime = std::chrono::milliseconds(expires_in * 1000);
  auto margin = std::max(std::chrono::milliseconds(1000), lifetime / 4);
  answer.token.renew_at = std::chrono::steady_clock::now() + (lifetime > margin ? lifetime - margin : lifetime / 2);
  answer.expires_in = expires_in;
  return answer;
}

} // namespace registry
