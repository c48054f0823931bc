#include "cmd/inputs.hpp"

#include "migrate/config.hpp"

#include <algorithm>
#include <cstdio>
#include <sstream>

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

std::vector<std::string> platforms(const cxxopts::ParseResult& args) {
  std::vector<std::string> out;
  if (!args.count("platforms"))
    return out;
  std::stringstream ps(args["platforms"].as<std::string>());
  for (std::string p; std::getline(ps, p, ',');) {
    if (p.empty())
      continue;
    if (std::count(p.begin(), p.end(), '/') < 1 || std::count(p.begin(), p.end(), '/') > 2)
      throw migrate::ConfigError("--platforms takes os/arch[/variant] values, not \"" + p + "\"");
    out.push_back(p);
  }
  return out;
}

std::vector<std::string> resolve_entries(const cxxopts::ParseResult& args) {
  if (!args.count("resolve"))
    return {};
  auto values = args["resolve"].as<std::vector<std::string>>();
  for (const auto& v : values) {
    auto first = v.find(':');
    auto second = first == std::string::npos ? std::string::npos : v.find(':', first + 1);
    if (first == 0 || second == std::string::npos || second + 1 >= v.size() ||
        v.substr(first + 1, second - first - 1).find_first_not_of("0123456789") != std::string::npos || second == first + 1)
      throw migrate::ConfigError("--resolve must be HOST:PORT:ADDRESS, not \"" + v + "\"");
  }
  return values;
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
