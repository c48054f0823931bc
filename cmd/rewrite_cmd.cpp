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
#include "migrate/rewrite.hpp"
#include "registry/reference.hpp"
#include "util/text.hpp"
#include "http/url.hpp"

#include <spdlog/spdlog.h>

#include <iostream>
#include <set>

namespace cmd {

int run_rewrite(int argc, char** argv) {
  cxxopts::Options opts("image-migrator rewrite",
                        "For the workloads of a cluster, the changes that point them at their migrated images "
                        "(from images.json): `kubectl set image` commands and a kustomize images: list; changes "
                        "nothing. With --apply: checks each workload as verify --cluster does and switches the READY "
                        "ones through the API, recording the images it replaced (image-migrator rollback undoes it).");
  add_cluster_options(opts);
  // clang-format off
  opts.add_options()
    ("images", "images file mapping sources to migrated images", cxxopts::value<std::string>()->default_value("./images.json"))
    ("format", "kubectl, kustomize, or both", cxxopts::value<std::string>()->default_value("both"))
    ("apply", "switch the workloads: patch each one's images (strategic merge, by container name), original images in the annotation image-migrator/original-images")
    ("auth", "with --apply: auth file, for the checks (as verify --cluster)", cxxopts::value<std::string>()->default_value("./auth.json"))
    ("pin-digests", "with --apply: write target@sha256:... (the verified digest) instead of the tag")
    ("dry-run", "with --apply: let the API server check every patch (dryRun=All), store nothing")
    ("batch", "with --apply: switch N workloads, wait until their rollouts are done (their status), then the next N; a rollout that fails or times out stops the run", cxxopts::value<int>())
    ("rollout-timeout", "with --batch: seconds to wait for a batch's rollouts", cxxopts::value<int>()->default_value("300"))
    ("force", "with --apply: switch NOT READY workloads too")
    ("workload", "with --apply: only this workload: KIND/NAME, with -n NAMESPACE", cxxopts::value<std::string>())
    ("report", "with --apply: also write the checks as JSON to this file", cxxopts::value<std::string>())
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
  bool apply = args.count("apply") > 0;
  for (const char* flag : {"pin-digests", "dry-run", "batch", "rollout-timeout", "force", "workload", "report"})
    if (!apply && args.count(flag))
      throw migrate::ConfigError(std::string("rewrite: --") + flag + " goes with --apply");
  if (args.count("rollout-timeout") && !args.count("batch"))
    throw migrate::ConfigError("rewrite: --rollout-timeout goes with --batch N (without --batch, rollouts are not waited for)");
  migrate::SwitchOptions so;
  so.pin_digests = args.count("pin-digests") > 0;
  so.dry_run = args.count("dry-run") > 0;
  so.force = args.count("force") > 0;
  if (args.count("batch")) {
    int n = args["batch"].as<int>();
    if (n < 1 || n > 10000)
      throw migrate::ConfigError("rewrite: --batch must be between 1 and 10000");
    so.batch = static_cast<std::size_t>(n);
  }
  int timeout = args["rollout-timeout"].as<int>();
  if (timeout < 1 || timeout > 86400)
    throw migrate::ConfigError("rewrite: --rollout-timeout must be between 1 and 86400 seconds");
  so.rollout_timeout = std::chrono::seconds(timeout);
  so.who = who_am_i();
  so.now = now_rfc3339();
  auto workload = apply ? workload_option(args) : std::pair<std::string, std::string>{};
  std::string images_path = args["images"].as<std::string>();
  auto targets = migrate::read_targets(migrate::load_document(images_path), images_path);
  std::optional<migrate::AuthConfig> auth;
  if (apply)
    auth = migrate::load_auth(args["auth"].as<std::string>(), args.count("auth") > 0, migrate::process_env());
  if (args.count("report"))
    migrate::check_writable(args["report"].as<std::string>());
  ClusterSession cluster(args, /*log_skipped=*/true);
  if (!cluster.inventory)
    return 1;
  auto& options = cluster.options;
  auto& log = cluster.log;
  auto& http_client = cluster.http_client;
  auto& kube_client = cluster.kube_client;
  auto& inventory = cluster.inventory;
  if (apply) {
    auto check = migrate::verify_cluster(*inventory, kube_client, http_client, *auth, migrate::process_env(), targets, log);
    keep_workload(check, workload, workload.first.empty() ? "" : args["namespaces"].as<std::string>());
    if (args.count("report"))
      migrate::write_json_atomically(args["report"].as<std::string>(), migrate::cluster_check_report(check));
    if (!workload.first.empty() && check.workloads.empty()) {
      log->error("{} {}/{}: not found among the workloads of the cluster", workload.first,
                 args["namespaces"].as<std::string>(), workload.second);
      return 1;
    }
    auto result = migrate::switch_workloads(check, kube_client, so, [](const std::string& line) {
      std::cout << line << "\n" << std::flush;
    });
    std::cout << (so.dry_run ? "would switch " : "switched ") << result.changed << " workload(s), " << result.unchanged
              << " already on their targets, " << result.failed << " refused or failed, " << result.manual
              << " to do by hand";
    if (result.not_mapped > 0)
      std::cout << ", " << result.not_mapped << " not in images.json (left where they are)";
    std::cout << "\n";
    if (result.changed > 0 && !so.dry_run)
      std::cout << "undo with: image-migrator rollback" << (options.namespaces.empty() ? "" : " -n " + args["namespaces"].as<std::string>())
                << "\n";
    return result.failed == 0 && inventory->forbidden == 0 && inventory->missing_namespaces.empty() ? 0 : 1;
  }
  auto rewrite = migrate::plan_rewrite(*inventory, targets);
  if (format != "kustomize")
    std::cout << rewrite.kubectl;
  // What images.json does not map stays on its old registry: said, so that a reader of the commands
  // does not take it for forgotten.
  std::set<std::string> target_names, stays;
  for (const auto& [source, target] : targets)
    if (auto r = registry::Reference::parse_normalized(target))
      target_names.insert(r->name());
  for (const auto& use : inventory->uses) {
    if (use.owned || (use.container_type != "container" && use.container_type != "initContainer"))
      continue;
    auto key = migrate::source_key(use.image);
    auto ref = registry::Reference::parse_normalized(use.image);
    if (!key || targets.count(*key) || (ref && target_names.count(ref->name())))
      continue;
    stays.insert("# " + use.container_type + " " + use.container + ": " + util::escape_control(use.image) +
                 " is not in images.json: it stays on its old registry [-n " + use.ns + " " + http::to_lower(use.kind) +
                 "/" + use.name + "]\n");
  }
  for (const auto& line : stays)
    std::cout << line;
  if (!stays.empty() && format == "kustomize")
    std::cout << "\n";
  if (format == "both")
    std::cout << "\n# kustomization.yaml\n";
  if (format != "kubectl")
    std::cout << rewrite.kustomize;
  log->info("{} change(s) in {} workload(s); nothing was applied", rewrite.changes, rewrite.workloads);
  return 0;
}

} // namespace cmd
