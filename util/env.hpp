#pragma once
// The environment as the libraries see it: a lookup they are given, never getenv() of their own, so
// that a test (or an embedding program) decides what HOME, KUBECONFIG or IMAGE_MIGRATOR_KEY are.

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace util {

/// The value of an environment variable, nullopt when it is not set.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

/// The process's own environment; only cmd/ (and tests that mean it) should call this.
EnvLookup process_env();

/// The value of `name`; nullopt when it is unset or `env` itself is empty (no environment at all).
std::optional<std::string> env_value(const EnvLookup& env, const std::string& name);
/// The value of `name`, empty when it is unset (or `env` itself is empty).
std::string env_or_empty(const EnvLookup& env, const std::string& name);

/// The environment of a child process: this process's own ("NAME=value" entries), with the
/// variables of `overrides` set to their values instead (added when absent). What a child must not
/// see (secrets) is withheld later, by run_process (util::withheld_from_children).
std::vector<std::string> child_environment(const std::vector<std::pair<std::string, std::string>>& overrides);

} // namespace util
