#include "cmd/app.hpp"
#include "cmd/inputs.hpp"
#include "cmd/logging.hpp"
#include "cmd/progress.hpp"
#include "cmd/signals.hpp"

#include "migrate/discover.hpp"
#include "migrate/engine.hpp"
#include "migrate/blob_locations.hpp"
#include "migrate/hint_file.hpp"
#include "migrate/tag_digests.hpp"

#include <spdlog/spdlog.h>

#include <iostream>
#include <tuple>
#include <mutex>
#include <set>
#include <sstream>

#ifndef IM_VERSION
#define IM_VERSION "dev"
#endif

namespace cmd {

namespace {

/// One line per image (and per referrer copied with one): what the engine reports, in words.
void log_result(spdlog::logger& log, const migrate::ImageResult& r, bool referrer) {
  const std::string arrow = (referrer ? "referrer " : "") + r.task.source.to_string() + " -> " + r.task.destination.to_string();
  const std::string referrers = r.referrers ? " referrers=" + std::to_string(r.referrers) : "";
  if (!r.ok) {
    // An unreachable registry: its whole message once, then one short line per image.
    static std::mutex mutex;
    static std::set<std::string> said;
    const std::string address = http::unreachable_address(r.error);
    bool again = false;
    if (!address.empty()) {
      std::lock_guard lock(mutex);
      again = !said.insert(address).second;
    }
    if (again)
      log.error("FAILED {}: {} cannot be reached (above)", arrow, address);
    else
      log.error("FAILED {}: {}", arrow, r.error);
  } else if (r.kept) {
    log.warn("KEPT {}: the destination tag holds {}, not the source's {}; left as it is (--no-overwrite)", arrow,
             r.replaced, r.digest);
  } else if (r.planned) {
    log.info("PLAN {} {} would copy {} blob(s), {} bytes; {} present, {} shared with other images{}{}{}", arrow,
             r.digest, r.blobs_copied, r.bytes, r.blobs_existed, r.blobs_mounted,
             r.blobs_foreign ? ", " + std::to_string(r.blobs_foreign) + " foreign" : "", referrers,
             r.replaced.empty() ? "" : "; would replace " + r.replaced);
  } else if (r.skipped) {
    log.info("OK {} {} already present, skipped ({:.2f}s){}", arrow, r.digest, r.seconds, referrers);
  } else {
    log.info("OK {} {} bytes={} time={:.2f}s blobs copied={} existed={} mounted={}{}{}{}", arrow, r.digest, r.bytes,
             r.seconds, r.blobs_copied, r.blobs_existed, r.blobs_mounted,
             r.blobs_foreign ? " foreign=" + std::to_string(r.blobs_foreign) : "", referrers,
             r.replaced.empty() ? "" : " replaced=" + r.replaced);
  }
}

struct Shard {
  int index = 0;
  int count = 1;
};

/// --shard I/N, or --shards N with the index from JOB_COMPLETION_INDEX (Indexed Job).
Shard parse_shard(const cxxopts::ParseResult& args, const migrate::EnvLookup& env) {
  Shard s;
  auto number = [](const std::string& text, const std::string& what) {
    std::size_t used = 0;
    int v = -1;
    try {
      v = std::stoi(text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (text.empty() || used != text.size())
      throw migrate::ConfigError(what);
    return v;
  };
  if (args.count("shard") && args.count("shards"))
    throw migrate::ConfigError("--shard and --shards are exclusive");
  if (args.count("shard")) {
    auto text = args["shard"].as<std::string>();
    auto slash = text.find('/');
    std::string bad = "--shard must be I/N (e.g. 0/3), not \"" + text + "\"";
    if (slash == std::string::npos)
      throw migrate::ConfigError(bad);
    s.index = number(text.substr(0, slash), bad);
    s.count = number(text.substr(slash + 1), bad);
  } else if (args.count("shards")) {
    s.count = args["shards"].as<int>();
    auto index = env("JOB_COMPLETION_INDEX");
    if (!index)
      throw migrate::ConfigError("--shards needs JOB_COMPLETION_INDEX (set by an Indexed Job) or use --shard I/N");
    s.index = number(*index, "JOB_COMPLETION_INDEX is not a number: \"" + *index + "\"");
  }
  if (s.count < 1 || s.index < 0 || s.index >= s.count)
    throw migrate::ConfigError("shard " + std::to_string(s.index) + "/" + std::to_string(s.count) +
                               " is out of range (0 <= I < N)");
  return s;
}

/// "10M" -> 10000000 bytes/s; -1 = unlimited.
long long parse_rate(const std::string& text) {
  if (text == "-1" || text == "0")
    return 0;
  std::size_t used = 0;
  double v = -1;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
  }
  std::string unit = text.substr(used);
  double scale = unit.empty() ? 1 : unit == "k" || unit == "K" ? 1e3 : unit == "M" ? 1e6 : unit == "G" ? 1e9 : -1;
  if (v <= 0 || scale < 0)
    throw migrate::ConfigError("--limit-rate must be bytes per second like 500k, 20M, 1G or -1, not \"" + text + "\"");
  return static_cast<long long>(v * scale);
}

} // namespace

int run_migrate(int argc, char** argv) {
  cxxopts::Options opts("image-migrator",
                        "Copies container images between registries (Docker Registry V2 / OCI distribution), "
                        "digests unchanged.\n\n" + commands_help());
  opts.custom_help("[flags]   (copies the images of --images; the flags are below)\n  image-migrator COMMAND "
                   "[flags]");
  add_input_options(opts);
  // clang-format off
  opts.add_options()
    ("log", "log file (empty = stderr only)", cxxopts::value<std::string>()->default_value("./image-migrator.log"))
    ("log-format", "text, or json (one object per line)", cxxopts::value<std::string>()->default_value("text"))
    ("shard", "take only shard I of N (I/N, 0-based), keyed by destination repository", cxxopts::value<std::string>())
    ("shards", "number of shards; the index comes from JOB_COMPLETION_INDEX (Indexed Job)", cxxopts::value<int>())
    ("r,retries", "extra passes over failed image tasks", cxxopts::value<int>()->default_value(std::to_string(migrate::EngineOptions{}.retries)))
    ("dry-run", "show what would be copied (HEAD requests only); write nothing anywhere")
    ("no-overwrite", "leave a destination tag that already holds a different image as it is (reported as KEPT)")
    ("force", "also go through images the destination already has (same digest): every blob is checked and what is missing is copied again, every manifest pushed (repairs a damaged destination)")
    ("write-failed", "write the images that failed (or were cancelled) as an images file, to run again just them", cxxopts::value<std::string>())
    ("report", "write a JSON report of every image (source, destination, digest, status: copied/skipped/kept/planned/failed, replaced digest, bytes, seconds, error)", cxxopts::value<std::string>())
    ("progress-interval", "seconds between progress lines when stderr is not a terminal (0 = off)", cxxopts::value<int>()->default_value("10"))
    ("platforms", "copy only these platforms of multi-arch images, e.g. linux/amd64,linux/arm64 (needs --filter-index when an index has others)", cxxopts::value<std::string>())
    ("filter-index", "with --platforms: write a filtered index (a NEW digest) instead of refusing")
    ("no-referrers", "do not copy the signatures, SBOMs and attestations that refer to each image (referrers API, sha256-<hex> and cosign tags)")
    ("resolve", "HOST:PORT:ADDRESS: connect to ADDRESS for HOST:PORT (repeatable; like curl --resolve)", cxxopts::value<std::vector<std::string>>())
    ("stall-timeout", "abort a transfer that moves no byte for this many seconds (env IMAGE_MIGRATOR_STALL_TIMEOUT; default 60)", cxxopts::value<int>())
    ("grace-period", "after SIGINT/SIGTERM, seconds the transfers in flight get before they are cut (default 30; in a pod keep it below terminationGracePeriodSeconds so the summary and the report are written)", cxxopts::value<double>())
    ("request-timeout", "give up a request that is not a blob (a manifest, a tag list, a token) after this many seconds, however it trickles (env IMAGE_MIGRATOR_REQUEST_TIMEOUT; default 300)", cxxopts::value<int>())
    ("limit-rate", "total download bandwidth in bytes/s (k, M, G suffixes; -1 = unlimited), one budget shared by all transfers", cxxopts::value<std::string>()->default_value("-1"))
    ("digest-cache", "file that remembers the digest of each source tag between runs: a re-sync names it in both of an image's HEADs (If-None-Match), which registries answer with 304 without reading the manifest; only a hint, their answers decide (empty = none; default $XDG_CACHE_HOME/image-migrator/tag-digests, else ~/.cache/image-migrator/tag-digests)", cxxopts::value<std::string>())
    ("blob-cache", "file that remembers where blobs were seen or pushed at destination registries between runs: a new repository whose layers sit in another repository there gets them by a mount instead of a copy; only a hint, a refused mount falls back to a copy (empty = none; default $XDG_CACHE_HOME/image-migrator/blob-locations, else ~/.cache/image-migrator/blob-locations)", cxxopts::value<std::string>())
    ("no-encrypt-auth", "leave plaintext passwords in the auth file (default: replace them by enc:v1: ciphertext)")
    ("v,verbose", "debug logging: each request as METHOD URL -> status (ms, bytes down and up)")
    ("h,help", "print this help")
    ("version", "print the version");
  // clang-format on
  auto parsed = parse(opts, argc, argv);
  if (!parsed)
    return 2;
  const auto& args = *parsed;
  if (args.count("help")) {
    std::cout << opts.help() << "\nExit codes: 0 all images copied, 1 some task failed, 2 usage or configuration error, "
                                "130/143 interrupted.\n";
    return 0;
  }
  if (args.count("version")) {
    std::cout << "image-migrator " << IM_VERSION << "\n";
    return 0;
  }
  auto env = migrate::process_env();
  const bool dry_run = args.count("dry-run") > 0;
  migrate::EngineOptions eo;
  eo.workers = workers(args);
  eo.retries = args["retries"].as<int>();
  eo.dry_run = dry_run;
  eo.no_overwrite = args.count("no-overwrite") > 0;
  eo.force = args.count("force") > 0;
  eo.platforms = platforms(args);
  eo.filter_index = args.count("filter-index") > 0;
  eo.referrers = args.count("no-referrers") == 0;
  if (auto why = eo.validate(); !why.empty())
    throw migrate::ConfigError(why);
  migrate::EngineContext context;
  context.env = env;
  int interval = args["progress-interval"].as<int>();
  if (interval < 0)
    throw migrate::ConfigError("--progress-interval must be 0 or more seconds");
  auto shard = parse_shard(args, env);
  auto defaults = cmd::defaults(args, env);
  auto format = parse_log_format(args["log-format"].as<std::string>());
  // A dry run writes nothing: not the default log file, not the auth file.
  std::string log_file = dry_run && !args.count("log") ? "" : args["log"].as<std::string>();
  auto input_opts = input_options(args);
  input_opts.encrypt_auth = !dry_run && !args.count("no-encrypt-auth");
  http::Options http_options;
  http_options.resolve = resolve_entries(args);
  std::unique_ptr<http::RateLimit> rate_limit; // one budget for every transfer of the run
  if (long long rate = parse_rate(args["limit-rate"].as<std::string>()); rate > 0) {
    rate_limit = std::make_unique<http::RateLimit>(rate);
    http_options.rate_limit = rate_limit.get();
  }
  int stall = args.count("stall-timeout") ? args["stall-timeout"].as<int>()
                                          : std::atoi(env("IMAGE_MIGRATOR_STALL_TIMEOUT").value_or("60").c_str());
  if (stall < 1 || stall > 3600)
    throw migrate::ConfigError("--stall-timeout must be between 1 and 3600 seconds");
  http_options.low_speed_time = std::chrono::seconds(stall);
  int deadline = args.count("request-timeout") ? args["request-timeout"].as<int>()
                                               : std::atoi(env("IMAGE_MIGRATOR_REQUEST_TIMEOUT").value_or("300").c_str());
  if (deadline < 1 || deadline > 86400)
    throw migrate::ConfigError("--request-timeout must be between 1 and 86400 seconds");
  http_options.request_deadline = std::chrono::seconds(deadline);

  // Files first: a configuration error stops the run before anything is written (outputs before the
  // inputs, since reading auth.json may encrypt its passwords in place).
  for (const char* output : {"report", "write-failed"})
    if (args.count(output))
      check_output(std::string("--") + output, args[output].as<std::string>());
  if (!log_file.empty())
    check_output("--log", log_file);
  // A file named on the command line gets the same check as the others; only the default location
  // (a directory of this tool's own under XDG_CACHE_HOME) is created when missing.
  // A dry run reads the caches without writing them, and checks them all the same.
  auto cache_file = [&](const char* flag, const std::filesystem::path& default_path, const std::string& header) {
    if (!args.count(flag))
      return default_path.string();
    std::string path = args[flag].as<std::string>();
    if (!path.empty()) {
      check_output(std::string("--") + flag, path);
      if (auto why = migrate::HintFile::foreign(path, header); !why.empty())
        throw migrate::ConfigError("--" + std::string(flag) + " " + why);
    }
    return path;
  };
  const bool cache_given = args.count("digest-cache") > 0;
  const std::string cache_path = cache_file("digest-cache", migrate::TagDigests::default_path(env), migrate::TagDigests::header);
  const bool blob_cache_given = args.count("blob-cache") > 0;
  const std::string blob_cache_path = cache_file("blob-cache", migrate::BlobLocations::default_path(env), migrate::BlobLocations::header);
  // One file for two purposes loses one of them (a report written over the failed list, a cache
  // written over the images file): refused.
  check_distinct({{"--auth", input_opts.config.empty() ? input_opts.auth : ""},
                  {"--images", input_opts.config.empty() ? input_opts.images : ""},
                  {"--config", input_opts.config},
                  {"--report", args.count("report") ? args["report"].as<std::string>() : ""},
                  {"--write-failed", args.count("write-failed") ? args["write-failed"].as<std::string>() : ""},
                  {"--log", log_file},
                  {"--digest-cache", cache_path},
                  {"--blob-cache", blob_cache_path}});
  auto inputs = migrate::load_inputs(input_opts, env);

  auto log = make_logger(log_file, format, args.count("verbose") > 0);
  if (!inputs.notice.empty())
    log->info("{}", inputs.notice);
  if (inputs.rules.empty() && inputs.rule_errors.empty())
    log->warn("{}: no rules: nothing to copy", inputs.images_name);
  // Where the caches are, or why there are none (-v).
  for (auto [what, path, given] : {std::tuple{"tag digests", &cache_path, cache_given},
                                   std::tuple{"blob locations", &blob_cache_path, blob_cache_given}})
    log->debug("{}: {}", what,
               !path->empty() ? *path
               : given        ? std::string("none (\"\" given)")
                              : std::string("none, nothing kept between runs (no cache directory: $XDG_CACHE_HOME is "
                                            "not an absolute path and $HOME is not a directory)"));
  std::optional<migrate::TagDigests> tag_digests;
  if (!cache_path.empty()) {
    tag_digests.emplace(cache_path);
    context.tag_digests = &*tag_digests;
  }
  std::optional<migrate::BlobLocations> blob_locations;
  if (!blob_cache_path.empty()) {
    blob_locations.emplace(blob_cache_path);
    context.blob_locations = &*blob_locations;
  }
  const double grace = args.count("grace-period") ? args["grace-period"].as<double>() : 30;
  if (!(grace >= 0 && grace <= 3600))
    throw migrate::ConfigError("--grace-period must be between 0 and 3600 seconds");
  SignalGuard signals(std::chrono::milliseconds(static_cast<long long>(grace * 1000)));
  http_options.cancel = signals.token();
  if (args.count("verbose")) // -v: every request, one line each
    http_options.trace = [log](const std::string& line) { log->debug("{}", line); };
  http::Client client(http_options);
  context.cancel = signals.token();
  context.log = log;
  context.on_result = [log](const migrate::ImageResult& r, bool referrer, bool) { log_result(*log, r, referrer); };
  // The report is written as images end: the run keeps only the failed ones (for --write-failed).
  std::optional<migrate::ReportWriter> report;
  if (args.count("report"))
    report.emplace(args["report"].as<std::string>());
  context.on_final = [&report](const migrate::ImageResult& r) {
    if (report)
      report->add(r);
  };
  migrate::Engine engine(client, inputs.auth, eo, std::move(context));

  inputs.rules = migrate::expand_namespaces(inputs.rules, defaults, engine.catalog_lister(), inputs.rule_errors);
  migrate::resolve_rules(inputs.rules, defaults); // parsed once: sharding, set-up and expansion read it
  if (shard.count > 1) {
    inputs.rules = migrate::rules_for_shard(inputs.rules, defaults, shard.index, shard.count);
    log->info("shard {}/{}: {} rule(s) for this shard", shard.index, shard.count, inputs.rules.size());
  }
  if (shard.index != 0)
    inputs.rule_errors.clear(); // reported once, by shard 0
  migrate::Expansion expansion;
  migrate::Summary summary;
  {
    ProgressReporter progress(engine.progress(), log, std::chrono::seconds(dry_run ? 0 : interval));
    // A digest source without a destination tag lands untagged: registry UIs do not show it, and
    // untagged-image clean-up policies delete it. Said once per rule.
    std::set<std::string> untagged;
    auto on_task = [&](const migrate::ImageTask& t) {
      if (t.destination.tag.empty() && t.destination.layout.empty() && untagged.insert(t.rule).second)
        log->warn("rule \"{}\" in {}: {} is pushed by digest only, without a tag: registry UIs do not list it and "
                  "untagged-image clean-up deletes it; give the destination a tag (\"{}:TAG\") to keep it",
                  t.rule, inputs.images_name, t.destination.to_string(), t.destination.name());
    };
    summary = migrate::run_rules(
        engine, inputs.rules, defaults, expansion,
        [&](migrate::Expansion& done) {
          for (const auto& e : inputs.rule_errors)
            done.errors.push_back(e);
          for (const auto& e : done.errors)
            log->error("rule \"{}\" in {}: {}", e.rule, inputs.images_name, e.message);
          log->info("{} image task(s) from {} rule(s), {} worker(s)", done.count, inputs.rules.size(), eo.workers);
        },
        on_task);
  }
  summary.generate_failed = expansion.errors.size();
  if (dry_run)
    log->info("dry run: would copy {} bytes; nothing was written", summary.bytes);
  else
    log->info("copied {} bytes in {:.1f}s{}", summary.bytes, summary.seconds,
              summary.resumed ? fmt::format("; {} broken download(s) resumed where they stopped", summary.resumed) : "");
  // A read-only home in a container: the next run asks as this one did (a warning only for a file
  // named on the command line).
  auto keep = [&](auto& cache, bool given, const char* what) {
    if (cache && !dry_run)
      if (auto error = cache->save())
        log->log(given ? spdlog::level::warn : spdlog::level::info, "{} not kept for the next run: {}", what, *error);
  };
  keep(tag_digests, cache_given, "tag digests");
  keep(blob_locations, blob_cache_given, "blob locations");
  if (report)
    report->finish(summary, expansion.errors);
  if (args.count("write-failed")) {
    // Written even when nothing failed (an empty object): a rerun of it then does nothing, and a
    // stale list of an earlier run cannot be taken for this one's.
    auto failed = migrate::failed_images_json(summary, expansion.errors);
    migrate::write_json_atomically(args["write-failed"].as<std::string>(), failed);
    if (!failed.empty())
      log->info("{} failed image(s) or rule(s) written to {}: run again with --images {}", failed.size(),
                args["write-failed"].as<std::string>(), args["write-failed"].as<std::string>());
  }
  log->info("{}", migrate::summary_line(summary));
  log->flush();
  if (signals.signal() != 0)
    return 128 + signals.signal(); // interrupted: 130 for SIGINT, 143 for SIGTERM
  return summary.failed == 0 && summary.generate_failed == 0 ? 0 : 1;
}

} // namespace cmd
