#pragma once
// The cutover step after a migration: for the discovered workloads, the changes that point them at
// their migrated images, as `kubectl set image` commands and as a kustomize `images:` list, so the
// switch is one reviewed change.

#include "kube/discovery.hpp"

#include <map>
#include <string>

namespace migrate {

struct Rewrite {
  std::string kubectl;   ///< one `kubectl set image` per workload, comments for what it cannot change
  std::string kustomize; ///< an `images:` list for kustomization.yaml
  std::size_t workloads = 0;
  std::size_t changes = 0;
};

/// `targets` maps normalized sources (images.json keys) to their migrated references. Objects with
/// ownerReferences are left to their controllers (the Deployment, not its ReplicaSets and Pods).
Rewrite plan_rewrite(const kube::Inventory& inventory, const std::map<std::string, std::string>& targets);

} // namespace migrate
