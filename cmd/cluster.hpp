#pragma once
// Flags shared by the commands that read a Kubernetes cluster (config, verify --cluster, rewrite,
// rollback).

#include "http/client.hpp"
#include "kube/client.hpp"
#include "kube/discovery.hpp"
#include "kube/kubeconfig.hpp"

#include <cxxopts.hpp>

#include <memory>

namespace cmd {

/// -k/--kubeconfig, --context, -n/--namespaces, --exclude-namespaces, --extra-resource, --page-size.
void add_cluster_options(cxxopts::Options& options);

/// Where the kubeconfig comes from (flags over environment).
kube::LoadOptions cluster_load_options(const cxxopts::ParseResult& args);

/// The server and credentials to use; ConfigError (one line) when they cannot be determined.
kube::RestConfig cluster_config(const cxxopts::ParseResult& args);

/// Namespaces and page size, validated.
kube::DiscoverOptions discover_options(const cxxopts::ParseResult& args);

/// What the commands that act on workloads (verify --cluster, rewrite, rollback) start from: a
/// logger, the clients, and the cluster's inventory listed with the command's flags. A listing that
/// failed is logged (inventory holds the error); otherwise the skipped objects (with `log_skipped`)
/// and the namespaces asked for that do not exist are.
struct ClusterSession {
  explicit ClusterSession(const cxxopts::ParseResult& args, bool log_skipped = false);
  ClusterSession(const ClusterSession&) = delete;
  ClusterSession& operator=(const ClusterSession&) = delete;

  kube::DiscoverOptions options;
  std::shared_ptr<spdlog::logger> log;
  http::Client http_client;
  kube::Client kube_client;
  kube::Result<kube::Inventory> inventory;
};

} // namespace cmd
