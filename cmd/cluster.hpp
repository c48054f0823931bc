#pragma once
// Flags shared by the commands that read a Kubernetes cluster (config, verify --cluster, rewrite,
// rollback).

#include "kube/discovery.hpp"
#include "kube/kubeconfig.hpp"

#include <cxxopts.hpp>

namespace cmd {

/// -k/--kubeconfig, --context, -n/--namespaces, --exclude-namespaces, --extra-resource, --page-size.
void add_cluster_options(cxxopts::Options& options);

/// Where the kubeconfig comes from (flags over environment).
kube::LoadOptions cluster_load_options(const cxxopts::ParseResult& args);

/// The server and credentials to use; ConfigError (one line) when they cannot be determined.
kube::RestConfig cluster_config(const cxxopts::ParseResult& args);

/// Namespaces and page size, validated.
kube::DiscoverOptions discover_options(const cxxopts::ParseResult& args);

} // namespace cmd
