#include "cmd/app.hpp"
#include "cmd/inputs.hpp"
#include "cmd/logging.hpp"

#include "migrate/engine.hpp"

#include <spdlog/spdlog.h>

#include <iostream>

namespace cmd {

int run_verify(int argc, char** argv) {
  cxxopts::Options opts("image-migrator verify",
                        "Compares source and destination manifest digests of every rule (HEAD requests; manifest "
                        "GETs for --platforms and --deep; nothing written): the post-migration audit. Exit 1 on any "
                        "difference.");
  add_input_options(opts);
  opts.add_options()("platforms", "the migration copied only these platforms with --filter-index: compare a multi-arch "
                                  "source with its index filtered to them", cxxopts::value<std::string>())(
      "resolve", "HOST:PORT:ADDRESS: connect to ADDRESS for HOST:PORT (repeatable; like curl --resolve)",
      cxxopts::value<std::vector<std::string>>())("deep", "for images the destination has, also read their manifests there and check that every "
                             "blob they name is present (INCOMPLETE otherwise; --force in a migration repairs them)")(
      "v,verbose", "debug logging")("h,help", "print this help");
  auto parsed = parse(opts, argc, argv);
  if (!parsed)
    return 2;
  const auto& args = *parsed;
  if (args.count("help")) {
    std::cout << opts.help() << "\n";
    return 0;
  }
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
  http::Client client(http_options);
  migrate::Engine engine(client, inputs.auth, eo, log);
  auto defaults = cmd::defaults(args, env);
  inputs.rules = migrate::expand_namespaces(inputs.rules, defaults, engine.catalog_lister(), inputs.rule_errors);
  auto expansion = migrate::expand_rules(inputs.rules, defaults, engine.tag_lister(), engine.created_lookup());
  for (const auto& e : inputs.rule_errors)
    expansion.errors.push_back(e);
  for (const auto& e : expansion.errors)
    log->error("rule \"{}\" in {}: {}", e.rule, inputs.images_name, e.message);

  std::size_t same = 0, different = 0, missing = 0, incomplete = 0, errors = 0;
  std::cout << "STATUS | SOURCE | SOURCE DIGEST | DESTINATION | DESTINATION DIGEST\n";
  for (const auto& v : engine.verify(expansion.tasks, args.count("deep") > 0)) {
    std::string status;
    if (!v.error.empty()) {
      status = "ERROR";
      ++errors;
    } else if (v.destination_digest.empty()) {
      status = "MISSING";
      ++missing;
    } else if (v.same() && !v.missing.empty()) {
      status = "INCOMPLETE";
      ++incomplete;
      log->error("{}: the destination {} lacks {} part(s) of the image, e.g. {}", v.task.source.to_string(),
                 v.task.destination.to_string(), v.missing.size(), v.missing.front());
    } else if (v.same()) {
      status = "SAME";
      ++same;
    } else {
      status = "DIFFERENT";
      ++different;
    }
    std::cout << status << " | " << v.task.source.to_string() << " | " << (v.source_digest.empty() ? "-" : v.source_digest)
              << (v.filtered_digest.empty() ? "" : " (filtered: " + v.filtered_digest + ")")
              << " | " << v.task.destination.to_string() << " | "
              << (v.destination_digest.empty() ? "-" : v.destination_digest) << "\n";
    if (!v.error.empty())
      log->error("{}: {}", v.task.source.to_string(), v.error);
  }
  std::cout << "verified " << (same + different + missing + incomplete + errors) << " image(s): " << same << " same, "
            << different << " different, " << missing << " missing, " << errors << " errors, " << expansion.errors.size()
            << " rules failed";
  if (args.count("deep"))
    std::cout << ", " << incomplete << " incomplete";
  std::cout << "\n";
  return different + missing + incomplete + errors + expansion.errors.size() == 0 ? 0 : 1;
}

} // namespace cmd
