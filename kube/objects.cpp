#include "kube/objects.hpp"

#include "http/url.hpp"

namespace kube {

std::string default_namespace(const RestConfig& config) { return config.ns.empty() ? "default" : config.ns; }

http::Status put_configmap(Client& client, const std::string& ns, const std::string& name,
                           const std::map<std::string, std::string>& data,
                           const std::map<std::string, std::string>& labels) {
  std::string what = "writing ConfigMap " + ns + "/" + name;
  nlohmann::json object = {{"apiVersion", "v1"},
                           {"kind", "ConfigMap"},
                           {"metadata", {{"name", name}, {"namespace", ns}}},
                           {"data", data}};
  if (!labels.empty())
    object["metadata"]["labels"] = labels;
  std::string collection = "/api/v1/namespaces/" + http::url_encode(ns) + "/configmaps";
  auto fail = [&](const http::Response& r) {
    return http::make_error(r.status == 403 || r.status == 401 ? http::ErrorKind::unauthorized : http::ErrorKind::http_status,
                            what + ": HTTP " + std::to_string(r.status) + " " + status_message(r), r.status);
  };
  auto created = client.send("POST", collection + "?fieldManager=image-migrator", object.dump(), "application/json");
  if (!created)
    return created.error().context(what);
  if (created->status == 201 || created->status == 200)
    return {};
  if (created->status != 409)
    return fail(*created);
  // There already: replaced whole (no resourceVersion: the audit's last word wins).
  auto replaced = client.send("PUT", collection + "/" + http::url_encode(name) + "?fieldManager=image-migrator",
                              object.dump(), "application/json");
  if (!replaced)
    return replaced.error().context(what);
  if (replaced->status != 200)
    return fail(*replaced);
  return {};
}

} // namespace kube
