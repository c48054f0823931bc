#pragma once
// Running a helper program (a Docker credential helper, a kubeconfig exec plugin): no shell, stdin
// from a string, stdout and stderr collected, a time limit after which it is killed, and no file
// descriptor or child left behind whatever happens.

#include "http/result.hpp"

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace http {

struct ProcessOutput {
  int status = 0; ///< exit code, or 128 + signal
  std::string out, err;
};

/// Runs `program` (a path, or a bare name looked up in PATH) as `name` with `args` and the
/// environment `env` ("NAME=value" entries; IMAGE_MIGRATOR_KEY and variables marked secret, see
/// util::withheld_from_children, are never passed on, whoever asks),
/// writes `input` to its stdin. An error when it cannot
/// start, does not finish within `limit` (it is killed) or writes more than `max_output` bytes.
Result<ProcessOutput> run_process(const std::string& program, const std::string& name,
                                  const std::vector<std::string>& args, const std::vector<std::string>& env,
                                  const std::string& input, std::chrono::milliseconds limit,
                                  std::size_t max_output = 1u << 20);

} // namespace http
