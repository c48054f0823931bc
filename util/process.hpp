#pragma once
// Process-wide protections that do not belong to any one library.

#include <string>
#include <string_view>

namespace util {

/// No core file, and no ptrace or /proc/<pid>/mem for other processes of the same user: the memory
/// of this process holds decrypted registry passwords and cluster tokens. Call first thing in main.
/// Returns false when the kernel refused one of the two (the other still applies).
bool keep_secrets_out_of_core_dumps();

/// Remembers that environment variable `name` holds a secret (a password auth.json reads from
/// it): child processes (credential helpers, exec plugins) are started without it.
void mark_secret_environment_variable(const std::string& name);
/// Whether a "NAME=value" entry must not be passed to a child process: IMAGE_MIGRATOR_KEY (the key of
/// auth.json's ciphertext) or a variable marked secret.
bool withheld_from_children(std::string_view entry);

} // namespace util
