#pragma once
// The environment as the libraries see it: a lookup they are given, never getenv() of their own, so
// that a test (or an embedding program) decides what HOME, KUBECONFIG or IMAGE_MIGRATOR_KEY are.

#include <functional>
#include <optional>
#include <string>

namespace util {

/// The value of an environment variable, nullopt when it is not set.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

/// The process's own environment; only cmd/ (and tests that mean it) should call this.
EnvLookup process_env();

/// The value of `name`, empty when it is unset (or `env` itself is empty).
std::string env_or_empty(const EnvLookup& env, const std::string& name);

} // namespace util
