#include "cmd/app.hpp"
#include "cmd/cluster.hpp"
#include "cmd/inputs.hpp"
#include "cmd/logging.hpp"

#include "kube/client.hpp"
#include "kube/discovery.hpp"
#include "kube/kubeconfig.hpp"
#include "kube/objects.hpp"
#include "migrate/config.hpp"
#include "migrate/discover.hpp"
#include "migrate/inputs.hpp"
#include "registry/reference.hpp"

#include <cxxopts.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

namespace cmd {

int run_config(int argc, char** argv) {
  cxxopts::Options opts("image-migrator config",
                        "Lists the workloads of a Kubernetes cluster and writes images.json (source -> target) "
                        "for the copy command.");
  add_cluster_options(opts);
  // clang-format off
  opts.add_options()
    ("t,repo", "target REGISTRY/NAMESPACE (default: DEFAULT_REGISTRY/DEFAULT_NAMESPACE from the environment)", cxxopts::value<std::string>())
    ("o,output", "images file to write", cxxopts::value<std::string>()->default_value("./images.json"))
    ("flatten", "path levels dropped from source repositories: all, none or N", cxxopts::value<std::string>()->default_value("all"))
    ("report", "write the pre-migration audit as JSON to this file", cxxopts::value<std::string>())
    ("audit-table", "print the audit as a table on stdout (with or without --report)")
    ("report-format", "deprecated: \"table\" is --audit-table (the --report file is JSON either way)", cxxopts::value<std::string>())
    ("check-target", "HEAD every target to flag images already migrated (credentials from --auth)")
    ("auth", "auth file for --check-target", cxxopts::value<std::string>()->default_value("./auth.json"))
    ("with-pull-secrets", "also write the credentials of the workloads' imagePullSecrets for the source registries to this auth file (mode 0600; needs get on secrets)", cxxopts::value<std::string>())
    ("allow-partial", "exit 0 even when some lists were refused (403) or a -n namespace does not exist: what they would hold is missing from the file")
    ("configmap", "also write images.json, audit.json and audit.txt into this ConfigMap ([NAMESPACE/]NAME; default namespace: the context's, in a pod its own): for an audit run as a Kubernetes Job", cxxopts::value<std::string>())
    ("print-config", "print which server, context and credentials would be used (no secrets), then exit")
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
  if (args.count("print-config")) {
    std::cout << kube::describe(cluster_config(args)).dump(2) << "\n";
    return 0;
  }
  // Like the copy command's empty destinations: -t, else DEFAULT_REGISTRY/DEFAULT_NAMESPACE.
  auto env = migrate::process_env();
  std::string repo;
  if (args.count("repo"))
    repo = args["repo"].as<std::string>();
  else if (env("DEFAULT_REGISTRY").value_or("").empty() || env("DEFAULT_NAMESPACE").value_or("").empty())
    throw migrate::ConfigError("config: -t/--repo REGISTRY/NAMESPACE is required (or DEFAULT_REGISTRY and "
                               "DEFAULT_NAMESPACE in the environment)");
  else
    repo = *env("DEFAULT_REGISTRY") + "/" + *env("DEFAULT_NAMESPACE");
  while (!repo.empty() && repo.back() == '/')
    repo.pop_back();
  auto check = registry::Reference::parse_explicit(repo + "/x");
  if (!check || check->registry.empty())
    throw migrate::ConfigError("config: -t/--repo must be REGISTRY/NAMESPACE (e.g. swr.example.com/org), not \"" + repo + "\"");
  auto flatten = migrate::parse_flatten(args["flatten"].as<std::string>());
  // --report-format table used to print a table and still write JSON to --report: the old spelling
  // keeps working, with a note saying what it does.
  bool table = args.count("audit-table") > 0;
  if (args.count("report-format")) {
    std::string format = args["report-format"].as<std::string>();
    if (format != "json" && format != "table")
      throw migrate::ConfigError("config: --report-format must be json or table");
    std::fprintf(stderr, "image-migrator config: --report-format is deprecated: the --report file is JSON either way; "
                         "use --audit-table to print the table on stdout\n");
    table = table || format == "table";
  }
  std::string output = args["output"].as<std::string>();
  // Every file this run writes is checked before the cluster is asked anything.
  check_output("--output", output);
  for (const char* flag : {"report", "with-pull-secrets"})
    if (args.count(flag))
      check_output(std::string("--") + flag, args[flag].as<std::string>());
  auto dopts = discover_options(args);
  auto rc = cluster_config(args);
  std::string cm_ns, cm_name;
  if (args.count("configmap")) {
    std::string v = args["configmap"].as<std::string>();
    auto slash = v.find('/');
    cm_ns = slash == std::string::npos ? kube::default_namespace(rc) : v.substr(0, slash);
    cm_name = slash == std::string::npos ? v : v.substr(slash + 1);
    if (!kube::valid_namespace_name(cm_ns) || cm_name.empty() || cm_name.size() > 253 ||
        cm_name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-.") != std::string::npos)
      throw migrate::ConfigError("config: --configmap must be [NAMESPACE/]NAME (lower-case letters, digits, '-', '.'), "
                                 "not \"" + v + "\"");
  }
  auto log = make_logger("", LogFormat::text, args.count("verbose") > 0);
  log->info("discovering workloads through {} ({})", rc.server, rc.source);

  http::Client http_client;
  kube::Client kube_client(http_client, rc, log);
  auto inventory = kube::discover(kube_client, dopts, log);
  if (!inventory) {
    log->error("{}", inventory.error().message);
    return 1;
  }
  auto plan = migrate::plan_images(*inventory, repo, flatten);
  nlohmann::json images(plan.images);
  migrate::write_json_atomically(output, images);

  std::size_t objects = 0;
  for (const auto& [kind, n] : inventory->objects)
    objects += n;
  log->info("{} images in {} objects ({} image references) written to {}", plan.images.size(), objects,
            inventory->uses.size(), output);
  for (const auto& w : inventory->warnings)
    log->warn("skipped: {}", w);
  for (const auto& w : plan.invalid)
    log->error("invalid image reference, not in {}: {}", output, w);
  if (inventory->excluded > 0)
    log->info("{} object(s) in the excluded namespaces left out", inventory->excluded);
  for (const auto& ns : inventory->unchecked_namespaces)
    log->warn("namespace {}: cannot tell whether it exists (get on namespaces is not allowed)", ns);

  if (args.count("with-pull-secrets")) {
    std::vector<std::string> warnings;
    auto auth = migrate::auth_from_pull_secrets(
        *inventory, [&](const std::string& ns, const std::string& name) { return kube::pull_secret_auths(kube_client, ns, name); },
        warnings);
    for (const auto& w : warnings)
      log->warn("{}", w);
    std::string path = args["with-pull-secrets"].as<std::string>();
    migrate::write_json_atomically(path, auth, 0600);
    log->info("credentials for {} source registr{} written to {} (mode 0600)", auth.size(), auth.size() == 1 ? "y" : "ies", path);
  }
  if (args.count("report") || table) {
    std::map<std::string, bool> in_target;
    if (args.count("check-target")) {
      auto auth = migrate::load_auth(args["auth"].as<std::string>(), args.count("auth") > 0, migrate::process_env());
      in_target = migrate::check_targets(http_client, auth, migrate::process_env(), plan, log);
    }
    auto report = migrate::audit_report(*inventory, plan, in_target);
    if (args.count("report")) {
      migrate::write_json_atomically(args["report"].as<std::string>(), report);
      log->info("audit written to {}", args["report"].as<std::string>());
    }
    if (table)
      std::cout << migrate::audit_table(report);
  }
  if (!cm_name.empty()) {
    // What a person fetches with kubectl after an in-cluster audit. A ConfigMap holds 1 MiB: the
    // audit's JSON goes first when it does not fit, then its table; images.json must fit.
    auto report = migrate::audit_report(*inventory, plan, {});
    std::map<std::string, std::string> data = {{"images.json", images.dump(2) + "\n"},
                                               {"audit.txt", migrate::audit_table(report)},
                                               {"audit.json", report.dump(2) + "\n"}};
    auto size = [&] {
      std::size_t n = 0;
      for (const auto& [k, v] : data)
        n += k.size() + v.size();
      return n;
    };
    for (const char* dropped : {"audit.json", "audit.txt"})
      if (size() > kube::max_configmap_bytes) {
        log->warn("ConfigMap {}/{}: {} left out ({} bytes in all is more than a ConfigMap holds); it is in the "
                  "pod's files and log", cm_ns, cm_name, dropped, size());
        data.erase(dropped);
      }
    if (size() > kube::max_configmap_bytes) {
      log->error("ConfigMap {}/{}: images.json alone is {} bytes, more than a ConfigMap holds (1 MiB): write it to "
                 "a volume instead (--output)", cm_ns, cm_name, data["images.json"].size());
      return 3;
    }
    if (auto st = kube::put_configmap(kube_client, cm_ns, cm_name, data, {{"app.kubernetes.io/name", "image-migrator"}});
        !st) {
      log->error("{}", st.error().message);
      return 1;
    }
    log->info("written to ConfigMap {}/{}: {}", cm_ns, cm_name, [&] {
      std::string keys;
      for (const auto& [k, v] : data)
        keys += (keys.empty() ? "" : ", ") + k;
      return keys;
    }());
  }
  // Exit 3: the cluster answered, and the answer is incomplete in a way a retry will not change (a
  // Job fails at once on it); 1 stays for errors that may pass (the API server unreachable).
  if (inventory->none_served) {
    log->error("{} serves none of the workload kinds (every list answered 404): is it a Kubernetes API server, "
               "with the right path?", kube_client.config().server);
    return 3;
  }
  // What could not be listed may hold images: a file without them must not pass for a complete one.
  // (A kind the server does not serve at all, 404, holds none.)
  if (inventory->forbidden > 0 && !args.count("allow-partial")) {
    log->error("{} list(s) refused (above): {} may miss images; --allow-partial accepts that", inventory->forbidden,
               output);
    return 3;
  }
  // A namespace asked for by name that is not there is most often a typo: an audit that reads
  // "no images" must not pass for one of that namespace (exit 3, as for a refused list).
  if (!inventory->missing_namespaces.empty()) {
    std::string names;
    for (const auto& ns : inventory->missing_namespaces)
      names += (names.empty() ? "" : ", ") + ns;
    if (!args.count("allow-partial")) {
      log->error("namespace(s) {} do not exist: nothing was listed there; --allow-partial accepts that", names);
      return 3;
    }
    log->warn("namespace(s) {} do not exist (accepted: --allow-partial)", names);
  }
  if (inventory->invalid_names > 0)
    log->error("{} object(s), container(s) or variable(s) left out (above): their names cannot be Kubernetes names",
               inventory->invalid_names);
  return plan.invalid.empty() && inventory->invalid_names == 0 ? 0 : 3;
}

} // namespace cmd
