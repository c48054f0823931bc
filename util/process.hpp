#pragma once
// Process-wide protections that do not belong to any one library.

namespace util {

/// No core file, and no ptrace or /proc/<pid>/mem for other processes of the same user: the memory
/// of this process holds decrypted registry passwords and cluster tokens. Call first thing in main.
/// Returns false when the kernel refused one of the two (the other still applies).
bool keep_secrets_out_of_core_dumps();

} // namespace util
