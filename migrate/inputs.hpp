#pragma once
// The user's two files (or image-syncer's single --config file) turned into credentials and rules,
// once, for every command that copies or compares images.

#include "migrate/config.hpp"
#include "migrate/rules.hpp"
#include "registry/client.hpp"

#include <string>
#include <vector>

namespace migrate {

struct InputOptions {
  std::string auth = "./auth.json";
  bool auth_given = false; ///< a missing default auth file means anonymous; a named one is an error
  std::string images = "./images.json";
  bool images_given = false; ///< --images on the command line (an error next to --config)
  std::string config; ///< {"auth": {...}, "images": {...}} instead of the two files
  bool encrypt_auth = true; ///< replace plaintext passwords of a writable JSON auth file by ciphertext
};

struct Inputs {
  AuthConfig auth;
  std::vector<Rule> rules;
  std::vector<RuleError> rule_errors; ///< values of the wrong type: "tasks generate failed"
  std::string images_name;            ///< for messages
  std::string notice;                 ///< what happened to the auth file, to log ("" = nothing)
};

/// Loads an auth file (JSON/YAML), decrypting enc:v1: values with the user's key. A missing file
/// that was not named explicitly means anonymous everywhere.
AuthConfig load_auth(const std::string& path, bool given, const EnvLookup& env);

/// How to talk to the registry of `ref`: the auth entry that matches it (credentials, TLS, proxy,
/// address...), and when it has no credentials, Docker's config.json (found through `env`).
registry::RegistryOptions registry_options(const AuthConfig& auth, const registry::Reference& ref, const EnvLookup& env);
/// The same; `key` names the combination (registry + auth entry, see store_key) so callers can share
/// one Registry per key.
registry::RegistryOptions registry_options(const AuthConfig& auth, const registry::Reference& ref, const EnvLookup& env,
                                           std::string& key);

/// Loads and validates everything; throws ConfigError (one line naming file and key) on bad input.
Inputs load_inputs(const InputOptions& options, const EnvLookup& env);

} // namespace migrate
