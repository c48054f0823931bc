#include "cmd/inputs.hpp"

#include "migrate/engine.hpp"

#include "migrate/config.hpp"
#include "util/text.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>
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
    ("w,workers", "concurrent image tasks and blob transfers", cxxopts::value<int>()->default_value(std::to_string(migrate::EngineOptions{}.workers)));
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
  migrate::EngineOptions o;
  o.workers = args["workers"].as<int>();
  if (auto why = o.validate(); !why.empty())
    throw migrate::ConfigError(why);
  return o.workers;
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

void check_output(const std::string& flag, const std::string& path) {
  namespace fs = std::filesystem;
  if (path.empty())
    throw migrate::ConfigError(flag + " needs a file name (\"\" names none)");
  const fs::path file(path);
  const fs::path dir = file.has_parent_path() ? file.parent_path() : fs::path(".");
  std::error_code ec;
  auto status = fs::status(dir, ec);
  if (status.type() == fs::file_type::not_found)
    throw migrate::ConfigError(flag + " " + path + ": directory " + dir.string() +
                               " does not exist (image-migrator does not create directories)");
  if (!ec && status.type() != fs::file_type::directory)
    throw migrate::ConfigError(flag + " " + path + ": " + dir.string() + " is not a directory");
  try {
    migrate::check_writable(path);
  } catch (const migrate::ConfigError& e) {
    throw migrate::ConfigError(flag + " " + e.what());
  }
}

void check_distinct(const std::vector<std::pair<std::string, std::string>>& files) {
  namespace fs = std::filesystem;
  std::vector<std::pair<std::string, fs::path>> seen;
  for (const auto& [flag, path] : files) {
    if (path.empty())
      continue;
    std::error_code ec;
    fs::path canonical = fs::weakly_canonical(fs::absolute(path, ec), ec);
    if (ec)
      canonical = path;
    for (const auto& [other_flag, other] : seen)
      if (other == canonical)
        throw migrate::ConfigError(flag + " " + path + ": the same file as " + other_flag +
                                   ": each needs its own (one would be lost)");
    seen.emplace_back(flag, canonical);
  }
}

std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  return util::closest_word(word, candidates);
}

namespace {

/// The text between cxxopts' quotes in one of its messages ("Option ‘x’ does not exist" -> "x").
std::string quoted(const std::string& message) {
  const std::string& left = cxxopts::LQUOTE;
  const std::string& right = cxxopts::RQUOTE;
  auto begin = message.find(left);
  auto end = message.rfind(right);
  if (begin == std::string::npos || end == std::string::npos || end < begin + left.size())
    return "";
  return message.substr(begin + left.size(), end - begin - left.size());
}

std::string dashed(const std::string& name) { return (name.size() == 1 ? "-" : "--") + name; }

/// The flag argv gave `value` to: "--workers=five", "--workers five", "-w five" or "-wfive".
std::string flag_with_value(int argc, char** argv, const std::string& value) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) == 0) {
      auto eq = arg.find('=');
      if (eq != std::string::npos && arg.substr(eq + 1) == value)
        return arg.substr(0, eq);
      if (eq == std::string::npos && i + 1 < argc && argv[i + 1] == value)
        return arg;
    } else if (arg.size() >= 2 && arg[0] == '-') {
      if (arg.size() == 2 && i + 1 < argc && argv[i + 1] == value)
        return arg;
      if (arg.substr(2) == value)
        return arg.substr(0, 2);
    }
  }
  return "";
}

std::vector<cxxopts::HelpOptionDetails> all_options(const cxxopts::Options& opts) {
  std::vector<cxxopts::HelpOptionDetails> out;
  for (const auto& group : opts.groups())
    for (const auto& o : opts.group_help(group).options)
      out.push_back(o);
  return out;
}

} // namespace

std::optional<cxxopts::ParseResult> parse(cxxopts::Options& opts, int argc, char** argv) {
  const char* program = opts.program().c_str();
  try {
    auto args = opts.parse(argc, argv);
    if (!args.unmatched().empty()) {
      std::fprintf(stderr, "%s: unexpected argument \"%s\" (see --help)\n", program, args.unmatched()[0].c_str());
      return std::nullopt;
    }
    return args;
  } catch (const cxxopts::exceptions::no_such_option& e) {
    std::string name = quoted(e.what());
    std::vector<std::string> names;
    for (const auto& o : all_options(opts))
      for (const auto& l : o.l)
        names.push_back(l);
    std::string guess = name.size() > 1 ? closest(name, names) : "";
    std::fprintf(stderr, "%s: unknown flag %s%s (see --help)\n", program, dashed(name).c_str(),
                 guess.empty() ? "" : (": did you mean --" + guess + "?").c_str());
  } catch (const cxxopts::exceptions::incorrect_argument_type& e) {
    // cxxopts names the value, not the flag: find the flag in argv, and what it takes in the options.
    std::string value = quoted(e.what());
    std::string flag = flag_with_value(argc, argv, value);
    std::string name = flag.substr(flag.find_first_not_of('-') == std::string::npos ? 0 : flag.find_first_not_of('-'));
    std::string expected = "a whole number";
    for (const auto& o : all_options(opts))
      if (o.s == name || std::find(o.l.begin(), o.l.end(), name) != o.l.end())
        expected = o.is_boolean ? "true or false" : expected;
    if (flag.empty())
      std::fprintf(stderr, "%s: \"%s\" is not %s (see --help)\n", program, value.c_str(), expected.c_str());
    else
      std::fprintf(stderr, "%s: %s takes %s, not \"%s\" (see --help)\n", program, flag.c_str(), expected.c_str(),
                   value.c_str());
  } catch (const cxxopts::exceptions::option_requires_argument& e) {
    std::fprintf(stderr, "%s: %s needs a value (see --help)\n", program, dashed(quoted(e.what())).c_str());
  } catch (const cxxopts::exceptions::missing_argument& e) {
    std::fprintf(stderr, "%s: %s needs a value (see --help)\n", program, dashed(quoted(e.what())).c_str());
  } catch (const cxxopts::exceptions::exception& e) {
    std::fprintf(stderr, "%s: %s (see --help)\n", program, e.what());
  }
  return std::nullopt;
}

} // namespace cmd
