#include "cmd/cluster.hpp"

#include "migrate/config.hpp"

#include <sstream>

namespace cmd {

void add_cluster_options(cxxopts::Options& opts) {
  // clang-format off
  opts.add_options()
    ("k,kubeconfig", "kubeconfig file (default: KUBECONFIG, ~/.kube/config, then the in-cluster service account)", cxxopts::value<std::string>())
    ("context", "kubeconfig context (default: current-context)", cxxopts::value<std::string>())
    ("n,namespaces", "comma-separated namespaces (default: all)", cxxopts::value<std::string>())
    ("page-size", "list page size", cxxopts::value<int>()->default_value("500"));
  // clang-format on
}

kube::LoadOptions cluster_load_options(const cxxopts::ParseResult& args) {
  auto lo = kube::options_from_environment();
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
  return d;
}

} // namespace cmd
