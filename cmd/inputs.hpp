#pragma once
// Flags shared by the commands that read auth.json and images.json (copy and verify).

#include "migrate/inputs.hpp"
#include "migrate/rules.hpp"

#include <cxxopts.hpp>

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

/// Parses argv; prints the cxxopts error as one line and returns nullopt on bad usage.
std::optional<cxxopts::ParseResult> parse(cxxopts::Options& options, int argc, char** argv);

} // namespace cmd
