#include "cmd/app.hpp"
#include "cmd/cluster.hpp"
#include "cmd/cutover.hpp"
#include "cmd/inputs.hpp"
#include "cmd/logging.hpp"

#include "kube/client.hpp"
#include "migrate/cutover.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <iostream>

namespace cmd {

int run_rollback(int argc, char** argv) {
  cxxopts::Options opts("image-migrator rollback",
                        "Undoes `rewrite --apply`: restores the images it recorded in each switched object's "
                        "image-migrator/original-images annotation, then removes its annotations. All switched "
                        "workloads, those of -n, or one (--workload). An object whose image changed since the switch "
                        "is left as it is (exit 1). Running it again changes nothing.");
  add_cluster_options(opts);
  // clang-format off
  opts.add_options()
    ("workload", "only this workload: KIND/NAME, with -n NAMESPACE", cxxopts::value<std::string>())
    ("dry-run", "let the API server check each patch (dryRun=All), store nothing")
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
  ClusterSession cluster(args);
  if (!cluster.inventory)
    return 1;
  auto& log = cluster.log;
  auto& kube_client = cluster.kube_client;
  auto& inventory = cluster.inventory;
  migrate::RollbackOptions ro;
  ro.dry_run = args.count("dry-run") > 0;
  ro.kind = workload.first;
  ro.name = workload.second;
  ro.ns = workload.first.empty() ? "" : args["namespaces"].as<std::string>();
  auto result = migrate::roll_back(*inventory, kube_client, ro, [](const std::string& line) {
    std::cout << line << "\n" << std::flush;
  });
  bool none = std::none_of(inventory->switched.begin(), inventory->switched.end(),
                           [](const kube::SwitchedObject& s) { return !s.owned; });
  if (none && ro.kind.empty())
    std::cout << "nothing to roll back: no workload carries " << kube::original_images_annotation << "\n";
  std::cout << (ro.dry_run ? "would restore " : "restored ") << result.changed << " workload(s), " << result.failed
            << " refused or failed, " << result.manual << " to do by hand\n";
  if (inventory->forbidden > 0)
    log->error("{} list(s) refused: switched workloads there were not rolled back", inventory->forbidden);
  return result.failed == 0 && inventory->forbidden == 0 && inventory->missing_namespaces.empty() ? 0 : 1;
}

} // namespace cmd
