#include "cmd/inputs.hpp"

#include "migrate/config.hpp"

#include <cstdio>

namespace cmd {

void add_input_options(cxxopts::Options& opts) {
  // clang-format off
  opts.add_options()
    ("auth", "auth file (JSON or YAML): registry[/namespace] -> {username, password, insecure, ...}", cxxopts::value<std::string>()->default_value("./auth.json"))
    ("images", "images file (JSON or YAML): source -> destination rules", cxxopts::value<std::string>()->default_value("./images.json"))
    ("config", "image-syncer style single file holding {\"auth\": {...}, \"images\": {...}}", cxxopts::value<std::string>())
    ("namespace", "default target namespace for empty destinations (env DEFAULT_NAMESPACE)", cxxopts::value<std::string>())
    ("registry", "default target registry for empty destinations (env DEFAULT_REGISTRY)", cxxopts::value<std::string>())
    ("default-source-registry", "registry for sources written without one", cxxopts::value<std::string>())
    ("default-source-namespace", "namespace for sources written without one", cxxopts::value<std::string>())
    ("w,workers", "concurrent image tasks and blob transfers", cxxopts::value<int>()->default_value("7"));
  // clang-format on
}

migrate::InputOptions input_options(const cxxopts::ParseResult& args) {
  migrate::InputOptions o;
  o.auth = args["auth"].as<std::string>();
  o.auth_given = args.count("auth") > 0;
  o.images = args["images"].as<std::string>();
  o.images_given = args.count("images") > 0;
  if (args.count("config"))
    o.config = args["config"].as<std::string>();
  return o;
}

migrate::Defaults defaults(const cxxopts::ParseResult& args, const migrate::EnvLookup& env) {
  auto flag_or_env = [&](const char* flag, const char* var) {
    return args.count(flag) ? args[flag].as<std::string>() : env(var).value_or("");
  };
  migrate::Defaults d;
  d.registry = flag_or_env("registry", "DEFAULT_REGISTRY");
  d.ns = flag_or_env("namespace", "DEFAULT_NAMESPACE");
  if (args.count("default-source-registry"))
    d.source_registry = args["default-source-registry"].as<std::string>();
  if (args.count("default-source-namespace"))
    d.source_namespace = args["default-source-namespace"].as<std::string>();
  return d;
}

int workers(const cxxopts::ParseResult& args) {
  int w = args["workers"].as<int>();
  if (w < 1 || w > 256)
    throw migrate::ConfigError("--workers must be between 1 and 256, not " + std::to_string(w));
  return w;
}

std::optional<cxxopts::ParseResult> parse(cxxopts::Options& opts, int argc, char** argv) {
  try {
    auto args = opts.parse(argc, argv);
    if (!args.unmatched().empty()) {
      std::fprintf(stderr, "%s: unexpected argument \"%s\" (see --help)\n", opts.program().c_str(), args.unmatched()[0].c_str());
      return std::nullopt;
    }
    return args;
  } catch (const cxxopts::exceptions::exception& e) {
    std::fprintf(stderr, "%s: %s (see --help)\n", opts.program().c_str(), e.what());
    return std::nullopt;
  }
}

} // namespace cmd
