#pragma once
// Credentials from Docker's config.json, so that users of docker, skopeo and crane need no auth.json
// entry with a password: credential helpers (credHelpers, credsStore) and the auths section, with
// Docker Hub's aliases and URL-form keys. Helpers run without a shell, under a time limit, at most
// once per helper and registry in a process.

#include "migrate/config.hpp"
#include "registry/auth.hpp"

#include <chrono>
#include <optional>
#include <string>

namespace migrate {

/// Docker's config.json: $DOCKER_CONFIG/config.json, else $HOME/.docker/config.json; "" when neither
/// variable is set (or both are empty).
std::string docker_config_path(const EnvLookup& env);

/// Credentials for `registry` (host[:port]; a URL such as "https://index.docker.io/v1/" is accepted)
/// from Docker's config.json (see docker_config_path), in this order:
///  1. credHelpers[registry]: `docker-credential-<name> get`; its answer is final (not found = nullopt).
///  2. credsStore: `docker-credential-<name> get`; when it knows nothing, go on with 3.
///  3. auths[registry]: "identitytoken", else base64 "auth" (user:password), else username/password.
/// The helper gets the server URL on stdin (the registry's host[:port]; "https://index.docker.io/v1/"
/// for Docker Hub) and answers {"ServerURL","Username","Secret"}; Username "<token>" means Secret is an
/// identity token. Keys match on host[:port] after dropping a scheme and a path, case-insensitively;
/// docker.io, index.docker.io, registry-1.docker.io and "https://index.docker.io/v1/" are one registry.
/// Among several auths keys for one registry, the exact key wins, then one carrying credentials.
/// nullopt when nothing is configured (no file, an empty file, no entry, an entry without credentials,
/// a helper saying "credentials not found"). A broken file, a broken matching entry or a failing helper
/// is a ConfigError naming the file and key (and the helper); its message never contains a secret.
/// Thread-safe; helper answers are cached for the life of the process.
std::optional<registry::Credentials> docker_credentials(const std::string& registry, const EnvLookup& env);

/// Runs `docker-credential-<helper> get` with `server_url` on stdin, uncached (docker_credentials
/// caches). The program is searched in env("PATH") (absolute directories only) and runs without a
/// shell, with the process environment and PATH taken from env. nullopt when the helper says
/// "credentials not found" or answers an empty Username and Secret. ConfigError (starting with
/// "docker-credential-<helper>") when it cannot be found or started, exits non-zero, runs longer than
/// `limit`, writes more than 1 MiB, or answers anything but the JSON above.
std::optional<registry::Credentials> credential_helper_get(const std::string& helper, const std::string& server_url,
                                                           const EnvLookup& env,
                                                           std::chrono::milliseconds limit = std::chrono::seconds(10));

} // namespace migrate
