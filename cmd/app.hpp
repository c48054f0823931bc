#pragma once
// The command line: parses flags into option structs and calls the libraries. Returns the exit
// code: 0 nothing failed, 1 a task failed, 2 usage or configuration error.

namespace cmd {

int run(int argc, char** argv);

/// `image-migrator [flags]`: copy images (the default command).
int run_migrate(int argc, char** argv);

/// `image-migrator config ...`: discover the images of a Kubernetes cluster.
int run_config(int argc, char** argv);

/// `image-migrator verify ...`: source and destination digests side by side.
int run_verify(int argc, char** argv);

/// `image-migrator rewrite ...`: the patches that point workloads at their migrated images.
int run_rewrite(int argc, char** argv);

} // namespace cmd
