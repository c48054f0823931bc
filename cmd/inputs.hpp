#pragma once
// Flags shared by the commands that read auth.json and images.json (copy and verify).

#include "migrate/inputs.hpp"
#include "migrate/rules.hpp"

#include <cxxopts.hpp>

#include <string>
#include <utility>
#include <vector>

namespace cmd {

/// --auth, --images, --config, --namespace, --registry, --default-source-*, -w.
void add_input_options(cxxopts::Options& options);

/// Reads those flags (and DEFAULT_REGISTRY / DEFAULT_NAMESPACE).
migrate::InputOptions input_options(const cxxopts::ParseResult& args);
migrate::Defaults defaults(const cxxopts::ParseResult& args, const migrate::EnvLookup& env);
/// -w/--workers, validated.
int workers(const cxxopts::ParseResult& args);

/// --platforms os/arch[/variant],..., validated ({} when not given).
std::vector<std::string> platforms(const cxxopts::ParseResult& args);
/// --resolve HOST:PORT:ADDRESS (repeatable), validated ({} when not given).
std::vector<std::string> resolve_entries(const cxxopts::ParseResult& args);

/// The one check of every file a flag names for writing (--log, --report, --write-failed, config's
/// -o ...), before any work: a missing directory is refused with both paths named (never created),
/// then the file must be writable. Throws migrate::ConfigError starting with the flag.
void check_output(const std::string& flag, const std::string& path);
/// ConfigError when two of these (flag, path) name one file (empty paths are not compared).
void check_distinct(const std::vector<std::pair<std::string, std::string>>& files);

/// Parses argv; on bad usage prints one line naming the flag (an unknown one with the closest known
/// flag, a value that is not a number with its flag) and returns nullopt.
std::optional<cxxopts::ParseResult> parse(cxxopts::Options& options, int argc, char** argv);

/// The candidate closest to `word` if it is a plausible typo of it (at most two edits, a swap of two
/// neighbours counting as one), else "".
std::string closest(const std::string& word, const std::vector<std::string>& candidates);

} // namespace cmd
