#include "cmd/app.hpp"
#include "cmd/cluster.hpp"
#include "cmd/cutover.hpp"
#include "cmd/inputs.hpp"
#include "cmd/logging.hpp"

#include "kube/client.hpp"
#include "migrate/config.hpp"
#include "migrate/cutover.hpp"
#include "migrate/discover.hpp"
#include "migrate/inputs.hpp"

#include <spdlog/spdlog.h>

#include <cstring>
#include <iostream>

namespace cmd {

int run_verify_cluster(int argc, char** argv) {
  cxxopts::Options opts("image-migrator verify --cluster",
                        "Before the cutover, per workload of the cluster: does each image's target (images.json) exist, "
                        "hold the same digest as the source (or what the pod runs now), have an image for every "
                        "platform of the nodes, and pull with the workload's own pull secrets? Reads only. Exit 1 if "
                        "any workload is NOT READY.");
  add_cluster_options(opts);
  // clang-format off
  opts.add_options()
    ("cluster", "check the workloads of a cluster (this mode)")
    ("images", "images file mapping sources to migrated images", cxxopts::value<std::string>()->default_value("./images.json"))
    ("auth", "auth file: the migration's credentials (does the target exist, its digest, the source's) and each registry's TLS settings", cxxopts::value<std::string>()->default_value("./auth.json"))
    ("workload", "only this workload: KIND/NAME, with -n NAMESPACE", cxxopts::value<std::string>())
    ("report", "also write the result as JSON to this file", cxxopts::value<std::string>())
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
  auto workload = workload_option(args);
  std::string images_path = args["images"].as<std::string>();
  auto targets = migrate::read_targets(migrate::load_document(images_path), images_path);
  auto auth = migrate::load_auth(args["auth"].as<std::string>(), args.count("auth") > 0, migrate::process_env());
  if (args.count("report"))
    migrate::check_writable(args["report"].as<std::string>());
  ClusterSession cluster(args);
  if (!cluster.inventory)
    return 1;
  auto& log = cluster.log;
  auto& http_client = cluster.http_client;
  auto& kube_client = cluster.kube_client;
  auto& inventory = cluster.inventory;
  auto check = migrate::verify_cluster(*inventory, kube_client, http_client, auth, migrate::process_env(), targets, log);
  keep_workload(check, workload, workload.first.empty() ? "" : args["namespaces"].as<std::string>());
  for (const auto& w : inventory->warnings)
    check.warnings.push_back("not listed: " + w);
  std::cout << migrate::cluster_check_text(check) << std::flush;
  if (args.count("report"))
    migrate::write_json_atomically(args["report"].as<std::string>(), migrate::cluster_check_report(check));
  if (!workload.first.empty() && check.workloads.empty()) {
    log->error("{} {}/{}: not found among the workloads of the cluster", workload.first,
               args["namespaces"].as<std::string>(), workload.second);
    return 1;
  }
  // What could not be listed was not checked: not a READY.
  // A check the RBAC refused proves nothing either: not a READY.
  return check.not_ready() == 0 && check.count(migrate::WorkloadCheck::Status::cannot_check) == 0 &&
                 inventory->forbidden == 0 && inventory->missing_namespaces.empty()
             ? 0
             : 1;
}

int run_verify_any(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--cluster") == 0)
      return run_verify_cluster(argc, argv);
  return run_verify(argc, argv);
}

} // namespace cmd
