#include "cmd/cluster.hpp"

#include "cmd/logging.hpp"
#include "migrate/config.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <sstream>

namespace cmd {

void add_cluster_options(cxxopts::Options& opts) {
  // clang-format off
  opts.add_options()
    ("k,kubeconfig", "kubeconfig file (default: KUBECONFIG, ~/.kube/config, then the in-cluster service account)", cxxopts::value<std::string>())
    ("context", "kubeconfig context (default: current-context)", cxxopts::value<std::string>())
    ("n,namespaces", "comma-separated namespaces (default: all)", cxxopts::value<std::string>())
    ("exclude-namespaces", "comma-separated namespaces to leave out (e.g. kube-system,kube-public,kube-node-lease)", cxxopts::value<std::string>())
    ("extra-resource", "also read images from a custom resource: GROUP/VERSION/RESOURCE=FIELD.PATH to a pod template, pod spec or image, e.g. argoproj.io/v1alpha1/rollouts=spec.template (repeatable)", cxxopts::value<std::vector<std::string>>())
    ("page-size", "list page size", cxxopts::value<int>()->default_value("500"));
  // clang-format on
}

kube::LoadOptions cluster_load_options(const cxxopts::ParseResult& args) {
  auto lo = kube::options_from_environment(util::process_env());
  if (args.count("kubeconfig"))
    lo.kubeconfig = args["kubeconfig"].as<std::string>();
  if (args.count("context"))
    lo.context = args["context"].as<std::string>();
  return lo;
}

kube::RestConfig cluster_config(const cxxopts::ParseResult& args) {
  auto rc = kube::rest_config(cluster_load_options(args));
  if (!rc)
    throw migrate::ConfigError(rc.error().message);
  return *rc;
}

kube::DiscoverOptions discover_options(const cxxopts::ParseResult& args) {
  kube::DiscoverOptions d;
  d.page_size = args["page-size"].as<int>();
  if (d.page_size < 1 || d.page_size > 10000)
    throw migrate::ConfigError("--page-size must be between 1 and 10000");
  std::stringstream ss(args.count("namespaces") ? args["namespaces"].as<std::string>() : "");
  for (std::string ns; std::getline(ss, ns, ',');)
    if (!ns.empty())
      d.namespaces.push_back(ns);
  if (args.count("exclude-namespaces")) {
    std::stringstream ex(args["exclude-namespaces"].as<std::string>());
    for (std::string ns; std::getline(ex, ns, ',');)
      if (!ns.empty())
        d.exclude_namespaces.push_back(ns);
  }
  for (const auto* list : {&d.namespaces, &d.exclude_namespaces})
    for (const auto& ns : *list)
      if (!kube::valid_namespace_name(ns))
        throw migrate::ConfigError("\"" + ns + "\" is not a namespace name (lower-case letters, digits and '-', at most "
                                   "63 characters)");
  if (args.count("extra-resource"))
    for (const auto& text : args["extra-resource"].as<std::vector<std::string>>()) {
      auto extra = kube::parse_extra_resource(text);
      if (!extra)
        throw migrate::ConfigError(extra.error().message);
      d.extra.push_back(*extra);
    }
  if (!d.namespaces.empty() && std::all_of(d.namespaces.begin(), d.namespaces.end(), [&](const std::string& ns) {
        return std::find(d.exclude_namespaces.begin(), d.exclude_namespaces.end(), ns) != d.exclude_namespaces.end();
      }))
    throw migrate::ConfigError("every namespace given with -n is also in --exclude-namespaces: nothing to list");
  return d;
}

ClusterSession::ClusterSession(const cxxopts::ParseResult& args, bool log_skipped)
    : options(discover_options(args)), log(make_logger("", LogFormat::text, args.count("verbose") > 0)),
      kube_client(http_client, cluster_config(args), log), inventory(kube::discover(kube_client, options, log)) {
  if (!inventory) {
    log->error("{}", inventory.error().message);
    return;
  }
  if (log_skipped)
    for (const auto& w : inventory->warnings)
      log->warn("skipped: {}", w);
  for (const auto& ns : inventory->missing_namespaces)
    log->error("namespace {} does not exist", ns);
}

} // namespace cmd
