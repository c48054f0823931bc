// token_server: a small Docker Registry v2 token server for the integration
// tests (https://distribution.github.io/distribution/spec/auth/token/,
// .../auth/jwt/ and .../auth/oauth/).
//
//   token_server --port P --key key.pem --cert cert.pem --users users.txt
//                --issuer ISSUER --service SERVICE [--ttl SECONDS]
//                [--anonymous-pull] [--log FILE] [--port-file FILE]
//                [--host ADDR] [--tls-cert FILE --tls-key FILE] [--exp-skew SECONDS]
//                [--delay-ms MS]
//
// --log lines: "EPOCH METHOD USER SCOPES STATUS [EXTRA] ms=ARRIVED-ANSWERED" (epoch ms).
// --delay-ms holds every answer that long: a token service far away.
// GET  /token  Docker token flow (HTTP Basic credentials or anonymous).
// POST /token  OAuth2 flow (grant_type=password | refresh_token).
// GET  /healthz  "ok".
//
// users.txt lines: user:password[:pull|push]   ("push" = pull+push+delete+*).
// Tokens are RS256 JWTs whose header carries the certificate in x5c.
//
// --exp-skew S subtracts S seconds from the exp claim only (expires_in stays
// --ttl). docker-registry 2.8 accepts a token until 60 s after its exp, so
// --exp-skew 60 makes the registry reject tokens --ttl seconds after issue.
//
// Only meant for tests: it listens on loopback by default, keeps refresh tokens
// in memory and compares passwords in plain text.

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstring>
#include <strings.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using json = nlohmann::json;

namespace {

// ---------------------------------------------------------------- encoding

std::string base64_encode(const unsigned char *data, size_t len, bool url) {
  static const char std_alpha[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  static const char url_alpha[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const char *a = url ? url_alpha : std_alpha;
  std::string out;
  out.reserve((len + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < len; i += 3) {
    unsigned v = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    out += a[(v >> 18) & 63];
    out += a[(v >> 12) & 63];
    out += a[(v >> 6) & 63];
    out += a[v & 63];
  }
  if (i < len) {
    unsigned v = data[i] << 16;
    if (i + 1 < len) v |= data[i + 1] << 8;
    out += a[(v >> 18) & 63];
    out += a[(v >> 12) & 63];
    if (i + 1 < len) {
      out += a[(v >> 6) & 63];
    } else if (!url) {
      out += '=';
    }
    if (!url) out += '=';
  }
  return out;
}

std::string b64url(const std::string &s) {
  return base64_encode(reinterpret_cast<const unsigned char *>(s.data()), s.size(), true);
}

// Decodes standard or URL-safe base64, padding optional. nullopt on bad input.
std::optional<std::string> base64_decode(const std::string &in) {
  std::string out;
  unsigned buf = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+' || c == '-') v = 62;
    else if (c == '/' || c == '_') v = 63;
    else if (c == '=') break;
    else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    else return std::nullopt;
    buf = (buf << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buf >> bits) & 0xff);
    }
  }
  return out;
}

std::string url_decode(const std::string &s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::multimap<std::string, std::string> parse_form(const std::string &body) {
  std::multimap<std::string, std::string> m;
  size_t pos = 0;
  while (pos <= body.size()) {
    size_t amp = body.find('&', pos);
    if (amp == std::string::npos) amp = body.size();
    std::string kv = body.substr(pos, amp - pos);
    if (!kv.empty()) {
      size_t eq = kv.find('=');
      if (eq == std::string::npos) m.emplace(url_decode(kv), "");
      else m.emplace(url_decode(kv.substr(0, eq)), url_decode(kv.substr(eq + 1)));
    }
    pos = amp + 1;
  }
  return m;
}

std::string form_get(const std::multimap<std::string, std::string> &m, const std::string &k) {
  auto it = m.find(k);
  return it == m.end() ? std::string() : it->second;
}

std::vector<std::string> split_ws(const std::string &s) {
  std::vector<std::string> out;
  std::istringstream is(s);
  std::string w;
  while (is >> w) out.push_back(w);
  return out;
}

std::vector<std::string> split(const std::string &s, char sep) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (true) {
    size_t n = s.find(sep, pos);
    out.push_back(s.substr(pos, n == std::string::npos ? std::string::npos : n - pos));
    if (n == std::string::npos) break;
    pos = n + 1;
  }
  return out;
}

std::string random_hex(size_t bytes) {
  std::vector<unsigned char> b(bytes);
  if (RAND_bytes(b.data(), static_cast<int>(b.size())) != 1) throw std::runtime_error("RAND_bytes failed");
  static const char *hex = "0123456789abcdef";
  std::string s;
  for (unsigned char c : b) {
    s += hex[c >> 4];
    s += hex[c & 15];
  }
  return s;
}

std::string rfc3339(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// ---------------------------------------------------------------- config

struct User {
  std::string password;
  bool push = true;
};

struct Options {
  std::string host = "127.0.0.1";
  int port = -1;
  std::string key, cert, users, issuer, service, log, port_file, tls_cert, tls_key;
  long ttl = 300;
  long exp_skew = 0;
  long delay_ms = 0; ///< every token answer waits this long (a token service far away)
  bool anonymous_pull = false;
};

[[noreturn]] void usage(const std::string &msg = {}) {
  if (!msg.empty()) std::cerr << "token_server: " << msg << "\n";
  std::cerr << "usage: token_server --port P --key key.pem --cert cert.pem --users users.txt\n"
               "                    --issuer ISSUER --service SERVICE [--ttl SECONDS]\n"
               "                    [--anonymous-pull] [--log FILE] [--port-file FILE]\n"
               "                    [--host ADDR] [--tls-cert FILE --tls-key FILE] [--exp-skew SECONDS]\n"
               "                    [--delay-ms MS]\n";
  std::exit(2);
}

Options parse_args(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string val;
    bool has_inline = false;
    if (auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      val = a.substr(eq + 1);
      a = a.substr(0, eq);
      has_inline = true;
    }
    auto next = [&]() -> std::string {
      if (has_inline) return val;
      if (i + 1 >= argc) usage("missing value for " + a);
      return argv[++i];
    };
    if (a == "--port") {
      try { o.port = std::stoi(next()); } catch (...) { usage("bad --port"); }
    } else if (a == "--host") o.host = next();
    else if (a == "--key") o.key = next();
    else if (a == "--cert") o.cert = next();
    else if (a == "--users") o.users = next();
    else if (a == "--issuer") o.issuer = next();
    else if (a == "--service") o.service = next();
    else if (a == "--ttl") {
      try { o.ttl = std::stol(next()); } catch (...) { usage("bad --ttl"); }
    } else if (a == "--exp-skew") {
      try { o.exp_skew = std::stol(next()); } catch (...) { usage("bad --exp-skew"); }
    } else if (a == "--delay-ms") {
      try { o.delay_ms = std::stol(next()); } catch (...) { usage("bad --delay-ms"); }
    } else if (a == "--anonymous-pull") o.anonymous_pull = true;
    else if (a == "--log") o.log = next();
    else if (a == "--port-file") o.port_file = next();
    else if (a == "--tls-cert") o.tls_cert = next();
    else if (a == "--tls-key") o.tls_key = next();
    else if (a == "-h" || a == "--help") usage();
    else usage("unknown argument " + a);
  }
  if (o.port < 0 || o.port > 65535) usage("--port is required (0 = pick a free port)");
  if (o.key.empty() || o.cert.empty() || o.users.empty() || o.issuer.empty() || o.service.empty())
    usage("--key, --cert, --users, --issuer and --service are required");
  if (o.ttl <= 0) usage("--ttl must be positive");
  if (o.tls_cert.empty() != o.tls_key.empty()) usage("--tls-cert and --tls-key go together");
  return o;
}

std::map<std::string, User> load_users(const std::string &path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read users file " + path);
  std::map<std::string, User> users;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    auto parts = split(line, ':');
    if (parts.size() < 2 || parts.size() > 3 || parts[0].empty())
      throw std::runtime_error("bad users line: " + parts[0] + ":...");
    User u;
    u.password = parts[1];
    if (parts.size() == 3) {
      if (parts[2] == "pull") u.push = false;
      else if (parts[2] == "push" || parts[2].empty()) u.push = true;
      else throw std::runtime_error("bad rights '" + parts[2] + "' for user " + parts[0]);
    }
    users[parts[0]] = u;
  }
  return users;
}

// ---------------------------------------------------------------- signing

struct PkeyDeleter { void operator()(EVP_PKEY *p) const { EVP_PKEY_free(p); } };
struct X509Deleter { void operator()(X509 *p) const { X509_free(p); } };
struct BioDeleter { void operator()(BIO *p) const { BIO_free(p); } };
struct MdCtxDeleter { void operator()(EVP_MD_CTX *p) const { EVP_MD_CTX_free(p); } };

class Signer {
 public:
  Signer(const std::string &key_path, const std::string &cert_path) {
    std::unique_ptr<BIO, BioDeleter> kb(BIO_new_file(key_path.c_str(), "r"));
    if (!kb) throw std::runtime_error("cannot open key " + key_path + ": " + openssl_error());
    key_.reset(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
    if (!key_) throw std::runtime_error("cannot parse key " + key_path + ": " + openssl_error());
    if (EVP_PKEY_base_id(key_.get()) != EVP_PKEY_RSA) throw std::runtime_error("key must be RSA (RS256)");

    std::unique_ptr<BIO, BioDeleter> cb(BIO_new_file(cert_path.c_str(), "r"));
    if (!cb) throw std::runtime_error("cannot open cert " + cert_path + ": " + openssl_error());
    std::unique_ptr<X509, X509Deleter> cert(PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr));
    if (!cert) throw std::runtime_error("cannot parse cert " + cert_path + ": " + openssl_error());
    if (X509_check_private_key(cert.get(), key_.get()) != 1)
      throw std::runtime_error("certificate does not match private key");
    unsigned char *der = nullptr;
    int n = i2d_X509(cert.get(), &der);
    if (n <= 0) throw std::runtime_error("i2d_X509 failed: " + openssl_error());
    x5c_ = base64_encode(der, static_cast<size_t>(n), false);
    OPENSSL_free(der);
  }

  std::string sign_jwt(const json &claims) const {
    json header = {{"typ", "JWT"}, {"alg", "RS256"}, {"x5c", json::array({x5c_})}};
    std::string input = b64url(header.dump()) + "." + b64url(claims.dump());
    std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1)
      throw std::runtime_error("EVP_DigestSignInit: " + openssl_error());
    size_t len = 0;
    const auto *msg = reinterpret_cast<const unsigned char *>(input.data());
    if (EVP_DigestSign(ctx.get(), nullptr, &len, msg, input.size()) != 1)
      throw std::runtime_error("EVP_DigestSign: " + openssl_error());
    std::vector<unsigned char> sig(len);
    if (EVP_DigestSign(ctx.get(), sig.data(), &len, msg, input.size()) != 1)
      throw std::runtime_error("EVP_DigestSign: " + openssl_error());
    return input + "." + base64_encode(sig.data(), len, true);
  }

 private:
  std::unique_ptr<EVP_PKEY, PkeyDeleter> key_;
  std::string x5c_;
};

// ---------------------------------------------------------------- scopes

struct Scope {
  std::string type, name;
  std::vector<std::string> actions;
};

// "type[(class)]:name:actions"; the name may itself contain ':' (e.g. a port).
std::optional<Scope> parse_scope(const std::string &s) {
  size_t first = s.find(':');
  size_t last = s.rfind(':');
  if (first == std::string::npos || first == last) return std::nullopt;
  Scope sc;
  sc.type = s.substr(0, first);
  if (auto p = sc.type.find('('); p != std::string::npos) sc.type.resize(p);
  sc.name = s.substr(first + 1, last - first - 1);
  if (sc.type.empty() || sc.name.empty()) return std::nullopt;
  for (auto &a : split(s.substr(last + 1), ','))
    if (!a.empty()) sc.actions.push_back(a);
  return sc;
}

struct Principal {
  std::string name;       // empty for anonymous
  bool authenticated = false;
  bool push = false;
};

// Actions of one scope granted to a principal: the intersection of what was
// asked and what the principal may do. "*" is granted as "*" to full users,
// and narrowed to "pull" for pull-only principals.
std::vector<std::string> granted_actions(const Scope &sc, const Principal &p, bool anonymous_pull) {
  std::set<std::string> allowed;
  if (sc.type == "repository") {
    if (p.authenticated) {
      allowed.insert("pull");
      if (p.push) allowed.insert({"push", "delete", "*"});
    } else if (anonymous_pull) {
      allowed.insert("pull");
    }
  } else if (sc.type == "registry" && sc.name == "catalog") {
    if (p.authenticated) allowed.insert("*");
  }
  std::vector<std::string> out;
  auto add = [&](const std::string &a) {
    if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  };
  for (const auto &a : sc.actions) {
    if (allowed.count(a)) add(a);
    else if (a == "*" && allowed.count("pull")) add("pull");
  }
  return out;
}

// ---------------------------------------------------------------- server

class TokenServer {
 public:
  TokenServer(Options o, std::map<std::string, User> users)
      : opt_(std::move(o)), users_(std::move(users)), signer_(opt_.key, opt_.cert) {
    if (!opt_.log.empty()) {
      log_ = std::fopen(opt_.log.c_str(), "a");
      if (!log_) throw std::runtime_error("cannot open log " + opt_.log);
    }
  }
  ~TokenServer() {
    if (log_) std::fclose(log_);
  }

  void install(httplib::Server &svr) {
    svr.Get("/token", [this](const httplib::Request &req, httplib::Response &res) {
      delay();
      handle_get(req, res);
    });
    svr.Post("/token", [this](const httplib::Request &req, httplib::Response &res) {
      delay();
      handle_post(req, res);
    });
    svr.Get("/healthz", [](const httplib::Request &, httplib::Response &res) {
      res.set_content("ok\n", "text/plain");
    });
    svr.set_exception_handler([](const httplib::Request &, httplib::Response &res, std::exception_ptr ep) {
      std::string what = "internal error";
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception &e) {
        what = e.what();
      } catch (...) {
      }
      res.status = 500;
      res.set_content(json{{"errors", {{{"code", "UNKNOWN"}, {"message", what}}}}}.dump(), "application/json");
    });
  }

 private:
  static void json_reply(httplib::Response &res, int status, const json &body) {
    res.status = status;
    res.set_header("Cache-Control", "no-store");
    res.set_content(body.dump(), "application/json");
  }

  static json docker_error(const std::string &code, const std::string &msg) {
    return json{{"errors", {{{"code", code}, {"message", msg}}}}};
  }

  void log_request(const std::string &method, const std::string &who, const std::vector<std::string> &scopes,
                   int status, const std::string &extra = {}) {
    if (!log_) return;
    std::string sc;
    for (const auto &s : scopes) sc += (sc.empty() ? "" : ";") + s;
    if (sc.empty()) sc = "-";
    std::ostringstream line;
    line << std::time(nullptr) << ' ' << method << ' ' << (who.empty() ? "anonymous" : who) << ' ' << sc << ' '
         << status;
    if (!extra.empty()) line << ' ' << extra;
    line << " ms=" << arrived_ms << '-' << now_ms() << '\n'; // last field: arrival and answer, epoch ms
    std::lock_guard<std::mutex> lk(mu_);
    std::fputs(line.str().c_str(), log_);
    std::fflush(log_);
  }

  // nullopt = bad credentials.
  std::optional<Principal> check_password(const std::string &user, const std::string &pass) const {
    auto it = users_.find(user);
    if (it == users_.end() || it->second.password != pass) return std::nullopt;
    return Principal{user, true, it->second.push};
  }

  // Builds the access claim and the signed token. Returns token, scope string.
  std::pair<std::string, json> issue(const Principal &p, const std::vector<std::string> &scopes,
                                     std::time_t now) const {
    json access = json::array();
    for (const auto &s : scopes) {
      auto sc = parse_scope(s);
      if (!sc) continue;
      auto acts = granted_actions(*sc, p, opt_.anonymous_pull);
      // Grant entries are emitted even when empty, as the reference server does.
      access.push_back({{"type", sc->type}, {"name", sc->name}, {"actions", acts}});
    }
    json claims = {
        {"iss", opt_.issuer},
        {"sub", p.name},
        {"aud", opt_.service},
        {"exp", static_cast<long long>(now + opt_.ttl - opt_.exp_skew)},
        {"nbf", static_cast<long long>(now - 5)},
        {"iat", static_cast<long long>(now)},
        {"jti", random_hex(16)},
        {"access", access},
    };
    return {signer_.sign_jwt(claims), access};
  }

  static std::string scope_string(const json &access) {
    std::string out;
    for (const auto &a : access) {
      if (a["actions"].empty()) continue;
      // Appended piece by piece: `const char* + std::string` trips GCC 12's -Wrestrict at -O3.
      std::string acts;
      for (const auto &x : a["actions"]) {
        if (!acts.empty()) acts += ',';
        acts += x.get<std::string>();
      }
      if (!out.empty()) out += ' ';
      out += a["type"].get<std::string>();
      out += ':';
      out += a["name"].get<std::string>();
      out += ':';
      out += acts;
    }
    return out;
  }

  bool service_ok(const std::string &svc) const { return svc.empty() || svc == opt_.service; }

  static long long now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  // When the request being answered on this thread arrived (for the log).
  static inline thread_local long long arrived_ms = 0;

  void delay() const {
    arrived_ms = now_ms();
    if (opt_.delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(opt_.delay_ms));
  }

  void handle_get(const httplib::Request &req, httplib::Response &res) {
    std::vector<std::string> scopes;
    for (size_t i = 0, n = req.get_param_value_count("scope"); i < n; ++i)
      for (auto &s : split_ws(req.get_param_value("scope", i))) scopes.push_back(s);
    const std::string service = req.get_param_value("service");
    const std::string account = req.get_param_value("account");

    Principal p;
    if (req.has_header("Authorization")) {
      const std::string h = req.get_header_value("Authorization");
      std::optional<std::string> dec;
      if (h.size() > 6 && strncasecmp(h.c_str(), "Basic ", 6) == 0) dec = base64_decode(h.substr(6));
      size_t colon = dec ? dec->find(':') : std::string::npos;
      std::optional<Principal> who;
      std::string user = "?";
      if (colon != std::string::npos) {
        user = dec->substr(0, colon);
        who = check_password(user, dec->substr(colon + 1));
      }
      if (!who) {
        res.set_header("WWW-Authenticate", "Basic realm=\"" + opt_.service + "\"");
        json_reply(res, 401, docker_error("UNAUTHORIZED", "authentication failed: invalid username or password"));
        log_request("GET", user, scopes, 401);
        return;
      }
      p = *who;
    }
    if (!service_ok(service)) {
      json_reply(res, 400, docker_error("DENIED", "unknown service '" + service + "'"));
      log_request("GET", p.name, scopes, 400);
      return;
    }
    if (!account.empty() && p.authenticated && account != p.name) {
      json_reply(res, 400, docker_error("DENIED", "account does not match the authenticated user"));
      log_request("GET", p.name, scopes, 400);
      return;
    }

    const std::time_t now = std::time(nullptr);
    auto [token, access] = issue(p, scopes, now);
    json body = {{"token", token},
                 {"access_token", token},
                 {"expires_in", opt_.ttl},
                 {"issued_at", rfc3339(now)}};
    if (p.authenticated && req.get_param_value("offline_token") == "true")
      body["refresh_token"] = new_refresh_token(p.name);
    json_reply(res, 200, body);
    log_request("GET", p.name, scopes, 200);
  }

  std::string new_refresh_token(const std::string &user) {
    std::string t = random_hex(24);
    std::lock_guard<std::mutex> lk(mu_);
    refresh_[t] = user;
    return t;
  }

  void handle_post(const httplib::Request &req, httplib::Response &res) {
    auto form = parse_form(req.body);
    const std::string grant = form_get(form, "grant_type");
    const std::string service = form_get(form, "service");
    const std::vector<std::string> scopes = split_ws(form_get(form, "scope"));
    const std::string extra = "grant_type=" + (grant.empty() ? std::string("-") : grant);

    auto oauth_error = [&](int status, const std::string &err, const std::string &desc, const std::string &who) {
      json_reply(res, status, json{{"error", err}, {"error_description", desc}});
      log_request("POST", who, scopes, status, extra);
    };

    Principal p;
    bool issue_refresh = false;
    std::string refresh;
    if (grant == "password") {
      const std::string user = form_get(form, "username");
      auto who = check_password(user, form_get(form, "password"));
      if (!who) return oauth_error(401, "invalid_grant", "invalid username or password", user.empty() ? "?" : user);
      p = *who;
      issue_refresh = form_get(form, "access_type") == "offline";
    } else if (grant == "refresh_token") {
      refresh = form_get(form, "refresh_token");
      std::string user;
      {
        std::lock_guard<std::mutex> lk(mu_);
        auto it = refresh_.find(refresh);
        if (it != refresh_.end()) user = it->second;
      }
      auto u = users_.find(user);
      if (refresh.empty() || user.empty() || u == users_.end())
        return oauth_error(401, "invalid_grant", "unknown refresh token", "?");
      p = Principal{user, true, u->second.push};
    } else {
      return oauth_error(400, "unsupported_grant_type", "grant_type must be password or refresh_token", "?");
    }
    if (!service_ok(service)) return oauth_error(400, "invalid_request", "unknown service '" + service + "'", p.name);

    const std::time_t now = std::time(nullptr);
    auto [token, access] = issue(p, scopes, now);
    json body = {{"access_token", token},
                 {"token", token},
                 {"expires_in", opt_.ttl},
                 {"issued_at", rfc3339(now)},
                 {"scope", scope_string(access)}};
    if (issue_refresh) body["refresh_token"] = new_refresh_token(p.name);
    json_reply(res, 200, body);
    log_request("POST", p.name, scopes, 200, extra);
  }

  Options opt_;
  std::map<std::string, User> users_;
  Signer signer_;
  std::FILE *log_ = nullptr;
  std::mutex mu_;
  std::map<std::string, std::string> refresh_;  // refresh token -> user
};

bool write_port_file(const std::string &path, int port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return false;
    out << port << "\n";
    if (!out.flush()) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace

int main(int argc, char **argv) {
  Options opt = parse_args(argc, argv);

  // Block the termination signals in every thread; one thread waits for them
  // and stops the server, so SIGTERM/SIGINT end the process with status 0.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  try {
    auto users = load_users(opt.users);
    TokenServer ts(opt, std::move(users));

    std::unique_ptr<httplib::Server> svr;
    if (!opt.tls_cert.empty()) {
      auto s = std::make_unique<httplib::SSLServer>(opt.tls_cert.c_str(), opt.tls_key.c_str());
      if (!s->is_valid()) throw std::runtime_error("cannot load TLS certificate/key");
      svr = std::move(s);
    } else {
      svr = std::make_unique<httplib::Server>();
    }
    ts.install(*svr);
    // Answers go out in more than one write: without TCP_NODELAY, Nagle's algorithm holds the last
    // one until the client's delayed ACK, 40 ms per token (real token services set it).
    svr->set_tcp_nodelay(true);
    // httplib (a compiled library here, so its build-time limits apply) listens with a backlog of 5
    // and serves each connection on one of 8 threads for as long as it stays open. A client that
    // fetches tokens for many repositories side by side (image-migrator) opens more connections at
    // once: SYNs beyond the backlog are dropped and retried a second later. Real token services
    // take far more: 64 threads, and the socket listens again with a backlog of 128 once bound.
    svr->new_task_queue = [] { return new httplib::ThreadPool(64); };
    socket_t listening = INVALID_SOCKET;
    svr->set_socket_options([&listening](socket_t sock) {
      httplib::default_socket_options(sock);
      listening = sock;
    });

    int port = opt.port;
    if (port == 0) {
      port = svr->bind_to_any_port(opt.host);
      if (port <= 0) throw std::runtime_error("cannot bind " + opt.host + ":0");
    } else if (!svr->bind_to_port(opt.host, port)) {
      throw std::runtime_error("cannot bind " + opt.host + ":" + std::to_string(port));
    }
    if (listening != INVALID_SOCKET)
      ::listen(listening, 128); // a listening socket takes a new backlog
    if (!opt.port_file.empty() && !write_port_file(opt.port_file, port))
      throw std::runtime_error("cannot write port file " + opt.port_file);
    std::cerr << "token_server: listening on " << (opt.tls_cert.empty() ? "http" : "https") << "://" << opt.host
              << ":" << port << "/token (service " << opt.service << ", issuer " << opt.issuer << ", ttl "
              << opt.ttl << "s)" << std::endl;

    std::atomic<bool> signalled{false};
    std::thread waiter([&svr, &signalled, sigs]() {
      int sig = 0;
      sigwait(&sigs, &sig);
      signalled = true;
      svr->stop();
    });

    const bool ok = svr->listen_after_bind();
    const bool by_signal = signalled.load();
    // If listen ended for a reason other than a signal, wake the waiter (it is
    // blocked in every thread, so the signal stays pending until sigwait takes it).
    if (!by_signal) kill(getpid(), SIGTERM);
    waiter.join();
    if (!by_signal && !ok) {
      std::cerr << "token_server: listen failed" << std::endl;
      return 1;
    }
    return 0;
  } catch (const std::exception &e) {
    std::cerr << "token_server: " << e.what() << std::endl;
    return 1;
  }
}
