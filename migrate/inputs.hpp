#pragma once
// The user's two files (or image-syncer's single --config file) turned into credentials and rules,
// once, for every command that copies or compares images.

#include "migrate/config.hpp"
#include "migrate/rules.hpp"

#include <string>
#include <vector>

namespace migrate {

struct InputOptions {
  std::string auth = "./auth.json";
  bool auth_given = false; ///< a missing default auth file means anonymous; a named one is an error
  std::string images = "./images.json";
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

/// Loads and validates everything; throws ConfigError (one line naming file and key) on bad input.
Inputs load_inputs(const InputOptions& options, const EnvLookup& env);

} // namespace migrate
