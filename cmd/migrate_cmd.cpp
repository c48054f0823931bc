#include "cmd/app.hpp"
#include "cmd/logging.hpp"
#include "cmd/signals.hpp"

#include "migrate/config.hpp"
#include "migrate/engine.hpp"
#include "migrate/rules.hpp"
#include "migrate/secrets.hpp"

#include <cxxopts.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#ifndef IM_VERSION
#define IM_VERSION "dev"
#endif

namespace cmd {

namespace {

struct MigrateFlags {
  std::string auth = "./auth.json";
  bool auth_given = false;
  std::string images = "./images.json";
  std::string config;
  std::string log = "./image-migrator.log";
  migrate::Defaults defaults;
  int retries = 3;
  int workers = 7;
  bool verbose = false;
  LogFormat log_format = LogFormat::text;
  int shard_index = 0;
  int shard_count = 1;
};

} // namespace

int run_migrate(int argc, char** argv) {
  cxxopts::Options opts("image-migrator",
                        "Copies container images between registries (Docker Registry V2 / OCI distribution), "
                        "digests unchanged.");
  opts.custom_help("[flags]");
  MigrateFlags f;
  // clang-format off
  opts.add_options()
    ("auth", "auth file (JSON or YAML): registry[/namespace] -> {username, password, insecure}", cxxopts::value<std::string>()->default_value(f.auth))
    ("images", "images file (JSON or YAML): source -> destination rules", cxxopts::value<std::string>()->default_value(f.images))
    ("config", "image-syncer style single file holding {\"auth\": {...}, \"images\": {...}}", cxxopts::value<std::string>())
    ("log", "log file (empty = stderr only)", cxxopts::value<std::string>()->default_value(f.log))
    ("log-format", "text, or json (one object per line)", cxxopts::value<std::string>()->default_value("text"))
    ("shard", "take only shard I of N (I/N, 0-based), keyed by source repository", cxxopts::value<std::string>())
    ("shards", "number of shards; the index comes from JOB_COMPLETION_INDEX (Indexed Job)", cxxopts::value<int>())
    ("namespace", "default target namespace for empty destinations (env DEFAULT_NAMESPACE)", cxxopts::value<std::string>())
    ("registry", "default target registry for empty destinations (env DEFAULT_REGISTRY)", cxxopts::value<std::string>())
    ("default-source-registry", "registry for sources written without one", cxxopts::value<std::string>())
    ("default-source-namespace", "namespace for sources written without one", cxxopts::value<std::string>())
    ("r,retries", "extra passes over failed image tasks", cxxopts::value<int>()->default_value("3"))
    ("w,workers", "concurrent image tasks and blob transfers", cxxopts::value<int>()->default_value("7"))
    ("no-encrypt-auth", "leave plaintext passwords in the auth file (default: replace them by enc:v1: ciphertext)")
    ("v,verbose", "debug logging")
    ("h,help", "print this help")
    ("version", "print the version");
  // clang-format on
  cxxopts::ParseResult args;
  try {
    args = opts.parse(argc, argv);
  } catch (const cxxopts::exceptions::exception& e) {
    std::fprintf(stderr, "image-migrator: %s (see --help)\n", e.what());
    return 2;
  }
  if (args.count("help")) {
    std::cout << opts.help() << "\nExit codes: 0 all images copied, 1 some task failed, 2 usage or configuration error.\n";
    return 0;
  }
  if (args.count("version")) {
    std::cout << "image-migrator " << IM_VERSION << "\n";
    return 0;
  }
  if (!args.unmatched().empty()) {
    std::fprintf(stderr, "image-migrator: unexpected argument \"%s\" (see --help)\n", args.unmatched()[0].c_str());
    return 2;
  }
  auto env = migrate::process_env();
  f.auth = args["auth"].as<std::string>();
  f.auth_given = args.count("auth") > 0;
  f.images = args["images"].as<std::string>();
  f.log = args["log"].as<std::string>();
  f.retries = args["retries"].as<int>();
  f.workers = args["workers"].as<int>();
  f.verbose = args.count("verbose") > 0;
  f.log_format = parse_log_format(args["log-format"].as<std::string>());
  if (args.count("shard") && args.count("shards"))
    throw migrate::ConfigError("--shard and --shards are exclusive");
  if (args.count("shard")) {
    auto text = args["shard"].as<std::string>();
    auto slash = text.find('/');
    try {
      std::size_t used = 0;
      f.shard_index = std::stoi(text.substr(0, slash), &used);
      if (slash == std::string::npos || used != slash)
        throw std::invalid_argument(text);
      f.shard_count = std::stoi(text.substr(slash + 1), &used);
      if (used != text.size() - slash - 1)
        throw std::invalid_argument(text);
    } catch (const std::exception&) {
      throw migrate::ConfigError("--shard must be I/N (e.g. 0/3), not \"" + text + "\"");
    }
  } else if (args.count("shards")) {
    f.shard_count = args["shards"].as<int>();
    auto index = env("JOB_COMPLETION_INDEX");
    if (!index)
      throw migrate::ConfigError("--shards needs JOB_COMPLETION_INDEX (set by an Indexed Job) or use --shard I/N");
    try {
      f.shard_index = std::stoi(*index);
    } catch (const std::exception&) {
      throw migrate::ConfigError("JOB_COMPLETION_INDEX is not a number: \"" + *index + "\"");
    }
  }
  if (f.shard_count < 1 || f.shard_index < 0 || f.shard_index >= f.shard_count)
    throw migrate::ConfigError("shard " + std::to_string(f.shard_index) + "/" + std::to_string(f.shard_count) +
                               " is out of range (0 <= I < N)");
  if (f.workers < 1 || f.workers > 256)
    throw migrate::ConfigError("--workers must be between 1 and 256, not " + std::to_string(f.workers));
  if (f.retries < 0 || f.retries > 100)
    throw migrate::ConfigError("--retries must be between 0 and 100, not " + std::to_string(f.retries));
  auto flag_or_env = [&](const char* flag, const char* var) {
    if (args.count(flag))
      return args[flag].as<std::string>();
    return env(var).value_or("");
  };
  f.defaults.registry = flag_or_env("registry", "DEFAULT_REGISTRY");
  f.defaults.ns = flag_or_env("namespace", "DEFAULT_NAMESPACE");
  if (args.count("default-source-registry"))
    f.defaults.source_registry = args["default-source-registry"].as<std::string>();
  if (args.count("default-source-namespace"))
    f.defaults.source_namespace = args["default-source-namespace"].as<std::string>();

  // Files first: a configuration error must stop the run before anything is written.
  nlohmann::json auth_doc, images_doc;
  std::string auth_name = f.auth, images_name = f.images;
  if (args.count("config")) {
    std::string path = args["config"].as<std::string>();
    auto doc = migrate::load_document(path);
    if (!doc.is_object())
      throw migrate::ConfigError(path + ": must be an object with \"auth\" and \"images\"");
    auth_doc = doc.value("auth", nlohmann::json());
    images_doc = doc.contains("images") ? doc["images"] : nlohmann::json();
    if (images_doc.is_null())
      throw migrate::ConfigError(path + ": has no \"images\" section");
    auth_name = path + ": auth";
    images_name = path + ": images";
  } else {
    if (f.auth_given || std::filesystem::exists(f.auth))
      auth_doc = migrate::load_document(f.auth);
    images_doc = migrate::load_document(f.images);
  }
  std::optional<migrate::SecretKey> key;
  auto decrypt = [&](const std::string& value) -> http::Result<std::string> {
    if (!key)
      key = migrate::SecretKey::load(false);
    if (!key)
      return http::make_error(http::ErrorKind::invalid, "encrypted, but there is no key (IMAGE_MIGRATOR_KEY or the key file)");
    return key->decrypt(value);
  };
  auto auth = migrate::AuthConfig::from_json(auth_doc, auth_name, env, decrypt);
  std::string protect_notice;
  if (!args.count("config") && !args.count("no-encrypt-auth") && std::filesystem::exists(f.auth))
    protect_notice = migrate::protect_auth_file(f.auth);
  std::vector<migrate::RuleError> rule_errors;
  auto rules = migrate::read_rules(images_doc, images_name, rule_errors);
  if (f.shard_index != 0)
    rule_errors.clear(); // reported once, by shard 0

  auto log = make_logger(f.log, f.log_format, f.verbose);
  if (!protect_notice.empty())
    log->info("{}", protect_notice);
  if (f.shard_count > 1) {
    rules = migrate::rules_for_shard(rules, f.defaults, f.shard_index, f.shard_count);
    log->info("shard {}/{}: {} rule(s) for this shard", f.shard_index, f.shard_count, rules.size());
  }
  SignalGuard signals(std::chrono::seconds(30));
  http::Options http_options;
  http_options.cancel = signals.abort();
  http::Client client(http_options);
  migrate::EngineOptions eo;
  eo.workers = f.workers;
  eo.retries = f.retries;
  eo.cancel = signals.stop();
  migrate::Engine engine(client, auth, eo, log);

  auto expansion = migrate::expand_rules(rules, f.defaults, engine.tag_lister());
  for (const auto& e : rule_errors)
    expansion.errors.push_back(e);
  for (const auto& e : expansion.errors)
    log->error("rule \"{}\" in {}: {}", e.rule, images_name, e.message);
  log->info("{} image task(s) from {} rule(s), {} worker(s)", expansion.tasks.size(), rules.size(), f.workers);

  auto summary = engine.run(expansion.tasks);
  summary.generate_failed = expansion.errors.size();
  log->info("copied {} bytes in {:.1f}s", summary.bytes, summary.seconds);
  log->info("{}", migrate::summary_line(summary));
  log->flush();
  if (signals.signal() != 0)
    return 128 + signals.signal(); // interrupted: 130 for SIGINT, 143 for SIGTERM
  return summary.failed == 0 && summary.generate_failed == 0 ? 0 : 1;
}

} // namespace cmd
