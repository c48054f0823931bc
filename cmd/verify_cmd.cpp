#include "cmd/app.hpp"
#include "cmd/inputs.hpp"
#include "cmd/logging.hpp"

#include "migrate/engine.hpp"
#include "migrate/verify_report.hpp"

#include <spdlog/spdlog.h>

#include <iostream>

namespace cmd {

int run_verify(int argc, char** argv) {
  cxxopts::Options opts("image-migrator verify",
                        "Compares source and destination manifest digests of every rule (HEAD requests; manifest "
                        "GETs for --platforms and --deep; nothing written): the post-migration audit. Exit 1 on any "
                        "difference.");
  add_input_options(opts);
  // clang-format off
  opts.add_options()
    ("platforms", "the migration copied only these platforms with --filter-index: compare a multi-arch source with its index filtered to them", cxxopts::value<std::string>())
    ("resolve", "HOST:PORT:ADDRESS: connect to ADDRESS for HOST:PORT (repeatable; like curl --resolve)", cxxopts::value<std::vector<std::string>>())
    ("deep", "for images the destination has, also read their manifests there and check that every blob they name is present (INCOMPLETE otherwise; --force in a migration repairs them)")
    ("output", "table (aligned columns, short digests, for people) or json (full digests, on stdout, for scripts)", cxxopts::value<std::string>()->default_value("table"))
    ("v,verbose", "debug logging")
    ("h,help", "print this help");
  // clang-format on
  auto parsed = parse(opts, argc, argv);
  if (!parsed)
    return 2;
  const auto& args = *parsed;
  if (args.count("help")) {
    std::cout << opts.help() << "\nExit codes: 0 every image the same, 1 any other status or a rule failed, 2 usage "
                                "or configuration error.\n";
    return 0;
  }
  const std::string output = args["output"].as<std::string>();
  if (output != "table" && output != "json")
    throw migrate::ConfigError("--output must be table or json, not \"" + output + "\"");
  auto env = migrate::process_env();
  migrate::EngineOptions eo;
  eo.workers = workers(args);
  eo.platforms = platforms(args);
  eo.filter_index = !eo.platforms.empty();
  http::Options http_options;
  http_options.resolve = resolve_entries(args);
  auto input_opts = input_options(args);
  input_opts.encrypt_auth = false; // verify reads only
  auto inputs = migrate::load_inputs(input_opts, env);
  auto log = make_logger("", LogFormat::text, args.count("verbose") > 0);
  if (args.count("verbose")) // -v: every request, one line each
    http_options.trace = [log](const std::string& line) { log->debug("{}", line); };
  http::Client client(http_options);
  migrate::EngineContext context;
  context.env = env;
  context.log = log;
  migrate::Engine engine(client, inputs.auth, eo, std::move(context));
  auto defaults = cmd::defaults(args, env);
  inputs.rules = migrate::expand_namespaces(inputs.rules, defaults, engine.catalog_lister(), inputs.rule_errors);
  migrate::resolve_rules(inputs.rules, defaults);
  auto expansion = engine.expand(inputs.rules, defaults);
  for (const auto& e : inputs.rule_errors)
    expansion.errors.push_back(e);
  for (const auto& e : expansion.errors)
    log->error("rule \"{}\" in {}: {}", e.rule, inputs.images_name, e.message);

  const bool deep = args.count("deep") > 0;
  auto results = engine.verify(expansion.tasks, deep);
  // The reasons go to stderr in both formats (the JSON has them too), so a person reading the table
  // sees why an image is not SAME.
  for (const auto& v : results) {
    if (!v.error.empty())
      log->error("{}: {}", v.task.source.to_string(), v.error);
    else if (migrate::verify_status(v) == migrate::VerifyStatus::incomplete)
      log->error("{}: the destination {} lacks {} part(s) of the image, e.g. {}", v.task.source.to_string(),
                 v.task.destination.to_string(), v.missing.size(), v.missing.front());
  }
  auto counts = migrate::verify_counts(results, expansion.errors.size());
  if (output == "json")
    std::cout << migrate::verify_json(results, expansion.errors, counts)
                     .dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
              << "\n";
  else
    std::cout << migrate::verify_table(results, counts, deep);
  return counts.all_same() ? 0 : 1;
}

} // namespace cmd
