#pragma once
// What the cutover commands (verify --cluster, rewrite --apply, rollback) share: --workload, who
// and when for the annotations, and the workload filter.

#include "migrate/cutover.hpp"

#include <cxxopts.hpp>

#include <string>

namespace cmd {

/// --workload KIND/NAME (with one -n namespace): kind and name, validated; {"", ""} when not given.
std::pair<std::string, std::string> workload_option(const cxxopts::ParseResult& args);

/// Keeps only the workload named by --workload (kind as kubectl spells it, "deployment/web") in
/// namespace `ns` (-n).
void keep_workload(migrate::ClusterCheck& check, const std::pair<std::string, std::string>& workload,
                   const std::string& ns);

/// "user@host", for the annotation saying who switched.
std::string who_am_i();

/// The current UTC time, RFC 3339.
std::string now_rfc3339();

} // namespace cmd
