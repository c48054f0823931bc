#include "cmd/app.hpp"
#include "cmd/cluster.hpp"
#include "cmd/inputs.hpp"
#include "cmd/logging.hpp"

#include "kube/client.hpp"
#include "migrate/config.hpp"
#include "migrate/discover.hpp"
#include "migrate/rewrite.hpp"

#include <spdlog/spdlog.h>

#include <iostream>

namespace cmd {

int run_rewrite(int argc, char** argv) {
  cxxopts::Options opts("image-migrator rewrite",
                        "For the workloads of a cluster, the changes that point them at their migrated images "
                        "(from images.json): `kubectl set image` commands and a kustomize images: list. Changes nothing.");
  add_cluster_options(opts);
  // clang-format off
  opts.add_options()
    ("images", "images file mapping sources to migrated images", cxxopts::value<std::string>()->default_value("./images.json"))
    ("format", "kubectl, kustomize, or both", cxxopts::value<std::string>()->default_value("both"))
    ("v,verbose", "debug logging")
    ("h,help", "print this help");
  // clang-format on
  auto parsed = parse(opts, argc, argv);
  if (!parsed)
    return 2;
  const auto& args = *parsed;
  if (args.count("help")) {
    std::cout << opts.help() << "\n";
    return 0;
  }
  std::string format = args["format"].as<std::string>();
  if (format != "kubectl" && format != "kustomize" && format != "both")
    throw migrate::ConfigError("rewrite: --format must be kubectl, kustomize or both");
  std::string images_path = args["images"].as<std::string>();
  auto doc = migrate::load_document(images_path);
  if (!doc.is_object())
    throw migrate::ConfigError(images_path + ": must be an object mapping source images to migrated images");
  std::map<std::string, std::string> targets;
  for (const auto& item : doc.items()) {
    auto key = migrate::source_key(item.key());
    if (key && item.value().is_string() && !item.value().get<std::string>().empty())
      targets[*key] = item.value().get<std::string>();
  }
  auto dopts = discover_options(args);
  auto rc = cluster_config(args);
  auto log = make_logger("", LogFormat::text, args.count("verbose") > 0);
  http::Client http_client;
  kube::Client kube_client(http_client, rc, log);
  auto inventory = kube::discover(kube_client, dopts, log);
  if (!inventory) {
    log->error("{}", inventory.error().message);
    return 1;
  }
  for (const auto& w : inventory->warnings)
    log->warn("skipped: {}", w);
  auto rewrite = migrate::plan_rewrite(*inventory, targets);
  if (format != "kustomize")
    std::cout << rewrite.kubectl;
  if (format == "both")
    std::cout << "\n# kustomization.yaml\n";
  if (format != "kubectl")
    std::cout << rewrite.kustomize;
  log->info("{} change(s) in {} workload(s); nothing was applied", rewrite.changes, rewrite.workloads);
  return 0;
}

} // namespace cmd
