#pragma once
// Writing to the API server: the ConfigMap an in-cluster audit leaves its results in. (Reads are in
// discovery.hpp.)

#include "kube/client.hpp"

#include <nlohmann/json.hpp>

#include <map>
#include <string>

namespace kube {

/// What a ConfigMap's data may hold in all: kube-apiserver refuses more than 1 MiB.
inline constexpr std::size_t max_configmap_bytes = 1024 * 1024;

/// Creates the ConfigMap `ns`/`name` with `data` (key -> text), or replaces the one that is there
/// (POST; after 409 AlreadyExists, PUT). Needs create, and update on that name. Errors name the
/// ConfigMap and carry the API server's Status message (403: which permission is missing).
http::Status put_configmap(Client& client, const std::string& ns, const std::string& name,
                           const std::map<std::string, std::string>& data,
                           const std::map<std::string, std::string>& labels = {});

/// The namespace requests go to when none is named: the context's (or the service account's, in a
/// pod), else "default", as kubectl does.
std::string default_namespace(const RestConfig& config);

} // namespace kube
