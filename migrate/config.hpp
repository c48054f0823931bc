#pragma once
// Loading the user's files: auth.json (credentials per registry or registry/namespace) and the
// JSON/YAML documents behind images.json and image-syncer's --config. Every error names the file,
// the key and, for syntax errors, the line and column.

#include "http/client.hpp"
#include "registry/auth.hpp"
#include "util/env.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace migrate {

/// A configuration error that ends the run (exit code 2). Its message is one line.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Looks up an environment variable; injectable so tests do not touch the real environment.
using util::EnvLookup;
using util::process_env;

/// Parses JSON or YAML text into JSON. `name` is used in messages ("auth.json:3:14: ...").
/// YAML is chosen for .yaml/.yml names, JSON for .json, otherwise by the first character.
nlohmann::json parse_document(std::string_view text, const std::string& name);

/// A whole file; ConfigError naming it when it is missing, a directory or unreadable.
std::string read_text_file(const std::string& path);

/// Reads and parses a file (see parse_document); a missing or unreadable file is a ConfigError.
nlohmann::json load_document(const std::string& path);

/// One entry of auth.json.
struct AuthEntry {
  std::string key; ///< "registry" or "registry/namespace"
  registry::Credentials credentials;
  bool insecure = false; ///< plain HTTP
  http::Tls tls;
  bool chunked_upload = false;
  std::string proxy;   ///< per-registry proxy URL
  std::string address; ///< connect to this address instead of resolving the registry name
  int max_concurrency = 0; ///< requests in flight to this registry at once (0 = no cap); registry keys only
  double rps = 0;          ///< requests per second to this registry (0 = no cap); registry keys only
  bool adaptive = true;    ///< fewer requests in flight when the registry says it is overloaded (registry::Limiter)
};

/// Decrypts an "enc:v1:" secret (see secrets.hpp).
using Decryptor = std::function<http::Result<std::string>(const std::string&)>;

/// Writes a file through util::AtomicFile (unpredictable temporary name beside it, created
/// exclusively, `mode` set before any byte, fsync, rename, directory fsync); ConfigError naming the
/// path when it cannot.
void write_file_atomically(const std::string& path, const std::string& content, unsigned mode = 0644);

/// Throws the ConfigError write_file_atomically would, now: for outputs written at the end of a
/// long run (--report), so that a wrong path fails before the work instead of after it.
void check_writable(const std::string& path);

/// auth.json: keys are `registry` or `registry/namespace`, the longest matching key wins.
class AuthConfig {
public:
  AuthConfig() = default;
  /// Validates the document; `$VAR`/`${VAR}` values are taken from `env` (unset = ConfigError).
  /// "enc:v1:" values are decrypted with `decrypt`.
  static AuthConfig from_json(const nlohmann::json& doc, const std::string& file, const EnvLookup& env,
                              const Decryptor& decrypt = {});

  /// The entry for a repository of a registry, or nullptr (anonymous, HTTPS).
  const AuthEntry* find(const std::string& registry, const std::string& repository) const;
  const std::vector<AuthEntry>& entries() const { return m_entries; }

private:
  std::vector<AuthEntry> m_entries;
};

/// The variable a value refers to: `${Name}`, or `$NAME` in upper case; nullopt for anything else
/// (a password that merely starts with '$').
std::optional<std::string> env_reference(const std::string& value);

/// A value as meant: "$$..." (the escape of a leading '$') is "$...", anything else unchanged.
std::string literal_value(const std::string& value);
/// The inverse: how to write `value` in auth.json so that it is read back as itself, never as a
/// variable ("$X" -> "$$X"). For values that come from elsewhere (a cluster's pull secrets).
std::string escaped_literal(const std::string& value);

/// Expands a value that is exactly `$VAR` or `${VAR}`; other strings are returned as literal_value.
/// An unset variable is a ConfigError naming `where` and the variable; for a `secret`, only a name
/// that cannot be a generated password (${NAME}, an underscore, or no digit) is printed.
std::string expand_env(const std::string& value, const std::string& where, const EnvLookup& env, bool secret = false);

} // namespace migrate
