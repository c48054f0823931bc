#pragma once
// The command line: parses flags into option structs and calls the libraries. Returns the exit
// code: 0 nothing failed, 1 a task failed, 2 usage or configuration error.

#include <string>

namespace cmd {

int run(int argc, char** argv);

/// The subcommands, a line each, for the top-level --help (the one list `run` dispatches on).
std::string commands_help();

/// `image-migrator [flags]`: copy images (the default command).
int run_migrate(int argc, char** argv);

/// `image-migrator config ...`: discover the images of a Kubernetes cluster.
int run_config(int argc, char** argv);

/// `image-migrator verify ...`: source and destination digests side by side.
int run_verify(int argc, char** argv);

/// `image-migrator rewrite ...`: the patches that point workloads at their migrated images.
int run_rewrite(int argc, char** argv);

/// `image-migrator auth export ...`: auth.json with its encrypted values decrypted.
int run_auth(int argc, char** argv);

/// `image-migrator verify --cluster ...`: is every workload ready for the cutover.
int run_verify_cluster(int argc, char** argv);
/// `verify`, or `verify --cluster` when that flag is there.
int run_verify_any(int argc, char** argv);

/// `image-migrator rollback ...`: undoes rewrite --apply.
int run_rollback(int argc, char** argv);

} // namespace cmd
