// kube_api_server: a read-only Kubernetes API server for the image-migrator
// tests. It serves workload objects loaded from JSON files (plus generated
// Deployments) the way kube-apiserver does, closely enough for kubectl 1.32
// and for image-migrator's kube/ client:
//
//   discovery   /version /api /api/v1 /apis /apis/{group} /apis/{group}/{version}
//               (classic JSON; with --aggregated-discovery also the
//               apidiscovery.k8s.io v2/v2beta1 APIGroupDiscoveryList when asked)
//   lists       /api/v1/{resource}, /api/v1/namespaces/{ns}/{resource},
//               /apis/{g}/{v}/{resource}, /apis/{g}/{v}/namespaces/{ns}/{resource}
//               with limit/continue pagination, labelSelector, fieldSelector
//   get         .../namespaces/{ns}/{resource}/{name}, /api/v1/namespaces/{name}
//   tables      Accept: application/json;as=Table;v=v1;g=meta.k8s.io (kubectl's
//               default human-readable output)
//
// Authentication (every request): bearer tokens (--token, --token-file),
// basic (--basic), client certificates signed by --client-ca. Failures are
// 401 Status objects like kube-apiserver's. See tests/kubeapi/README.md.
//
//   writes      POST (create), PUT (update), PATCH (merge, strategic merge,
//               JSON patch), DELETE, with resourceVersion preconditions (409)
//               and dryRun=All; a controller that rolls workloads out after a
//               template change (status, generation) for `kubectl rollout status`
//   watch       watch=true streams the changes after a resourceVersion
//   rbac        --rbac FILE: Roles, ClusterRoles and their bindings decide
//               what users may do (system:masters may do anything), as RBAC does
//
// Test-only: loopback by default, secrets compared in plain text.

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace {

// ------------------------------------------------------------------ options

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string port_file;
  std::string cert, key, client_ca;
  std::vector<std::string> tokens;
  std::vector<std::string> token_files;
  std::vector<std::string> basics;  // "user:pass"
  std::vector<std::string> object_paths;
  int generate = 0;
  long expire_continue = 0;  // 0 = never
  bool expire_inconsistent = false;
  std::set<std::string> forbid;          // resource names (group suffix stripped)
  std::set<std::string> forbid_cluster;  // only cluster-scope lists forbidden
  std::set<std::string> disabled_versions;  // "batch/v1", "v1" for core
  std::string log_file;
  bool log_accept = false;
  bool aggregated_discovery = false;
  bool list_item_kinds = false;
  bool no_table = false;
  std::string token_user = "token-user";
  int exit_after = 0;
  std::string server_version = "v1.32.0";
  std::vector<std::string> rbac_files;        // Roles, ClusterRoles, bindings (JSON)
  std::vector<std::string> extra_resources;   // group/version/plural/Kind[/cluster]
  int rollout_delay_ms = 300;                 // template change -> rolled out
  std::vector<std::string> unready_images;    // rollouts to these never become ready
  long bump_before_patch = 0;                 // the first N PATCHes meet a newer object
};

void usage(FILE *out) {
  std::fputs(
      "usage: kube_api_server [--host ADDR] [--port P] [--port-file FILE]\n"
      "         [--cert server.pem --key server-key.pem] [--client-ca ca.pem]\n"
      "         [--token T]... [--token-file F]... [--basic user:pass]...\n"
      "         [--token-user NAME]\n"
      "         [--objects DIR_OR_FILE]... [--generate N]\n"
      "         [--expire-continue N] [--expire-continue-inconsistent]\n"
      "         [--forbid RESOURCE]... [--forbid-cluster RESOURCE]...\n"
      "         [--disable-version GROUP/VERSION]...\n"
      "         [--aggregated-discovery] [--no-table] [--list-item-kinds]\n"
      "         [--log FILE] [--log-accept] [--exit-after SECONDS]\n"
      "         [--server-version vX.Y.Z]\n"
      "         [--rbac FILE]... [--resource GROUP/VERSION/PLURAL/Kind[/cluster]]...\n"
      "         [--rollout-delay-ms N] [--unready-image SUBSTRING]...\n"
      "         [--bump-before-patch N]\n",
      out);
}

// ------------------------------------------------------------------ helpers

std::string trim(const std::string &s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

std::vector<std::string> split(const std::string &s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

bool starts_with(const std::string &s, const std::string &p) {
  return s.size() >= p.size() && s.compare(0, p.size(), p) == 0;
}

const char kB64Std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const char kB64Url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string b64_encode(const std::string &in, bool url) {
  const char *tbl = url ? kB64Url : kB64Std;
  std::string out;
  size_t i = 0;
  while (i + 2 < in.size()) {
    unsigned v = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8 |
                 (unsigned char)in[i + 2];
    out += tbl[v >> 18 & 63];
    out += tbl[v >> 12 & 63];
    out += tbl[v >> 6 & 63];
    out += tbl[v & 63];
    i += 3;
  }
  size_t rest = in.size() - i;
  if (rest == 1) {
    unsigned v = (unsigned char)in[i] << 16;
    out += tbl[v >> 18 & 63];
    out += tbl[v >> 12 & 63];
    if (!url) out += "==";
  } else if (rest == 2) {
    unsigned v = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8;
    out += tbl[v >> 18 & 63];
    out += tbl[v >> 12 & 63];
    out += tbl[v >> 6 & 63];
    if (!url) out += '=';
  }
  return out;
}

// Decodes standard or URL-safe base64, padding optional.
std::optional<std::string> b64_decode(const std::string &in) {
  std::string out;
  unsigned acc = 0;
  int bits = 0;
  size_t pad = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+' || c == '-') v = 62;
    else if (c == '/' || c == '_') v = 63;
    else if (c == '=') {
      ++pad;
      continue;
    } else
      return std::nullopt;
    if (pad) return std::nullopt;  // data after padding
    acc = (acc << 6) | unsigned(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((acc >> bits) & 0xff);
    }
  }
  if (bits >= 6) return std::nullopt;  // a lone trailing symbol
  return out;
}

std::string read_file(const std::string &path, bool *ok) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *ok = false;
    return {};
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  *ok = true;
  return ss.str();
}

// ------------------------------------------------------------------ resources

struct Resource {
  std::string group;     // "" = core
  std::string name;      // plural, e.g. "deployments"
  std::string singular;  // "deployment"
  std::string kind;      // "Deployment"
  bool namespaced = true;
  std::vector<std::string> versions;  // in preference order
  std::vector<std::string> short_names;
  std::vector<std::string> categories;
  bool custom = false;  // --resource: a custom resource (no strategic merge patch)
};

std::vector<Resource> &resources() {
  static std::vector<Resource> r = {
      {"", "pods", "pod", "Pod", true, {"v1"}, {"po"}, {"all"}},
      {"", "replicationcontrollers", "replicationcontroller",
       "ReplicationController", true, {"v1"}, {"rc"}, {"all"}},
      {"", "podtemplates", "podtemplate", "PodTemplate", true, {"v1"}, {}, {}},
      {"", "namespaces", "namespace", "Namespace", false, {"v1"}, {"ns"}, {}},
      {"", "secrets", "secret", "Secret", true, {"v1"}, {}, {}},
      {"", "configmaps", "configmap", "ConfigMap", true, {"v1"}, {"cm"}, {}},
      {"", "nodes", "node", "Node", false, {"v1"}, {"no"}, {}},
      {"", "serviceaccounts", "serviceaccount", "ServiceAccount", true, {"v1"},
       {"sa"}, {}},
      {"apps", "deployments", "deployment", "Deployment", true, {"v1"},
       {"deploy"}, {"all"}},
      {"apps", "statefulsets", "statefulset", "StatefulSet", true, {"v1"},
       {"sts"}, {"all"}},
      {"apps", "daemonsets", "daemonset", "DaemonSet", true, {"v1"}, {"ds"},
       {"all"}},
      {"apps", "replicasets", "replicaset", "ReplicaSet", true, {"v1"}, {"rs"},
       {"all"}},
      {"batch", "jobs", "job", "Job", true, {"v1"}, {}, {"all"}},
      {"batch", "cronjobs", "cronjob", "CronJob", true, {"v1", "v1beta1"},
       {"cj"}, {"all"}},
  };
  return r;
}

std::string group_version(const std::string &group, const std::string &version) {
  return group.empty() ? version : group + "/" + version;
}

// "daemonsets.apps" (kube-apiserver's qualified name; core has no suffix).
std::string qualified(const Resource &r) {
  return r.group.empty() ? r.name : r.name + "." + r.group;
}

const Resource *resource_by_kind(const std::string &kind) {
  for (const auto &r : resources())
    if (r.kind == kind) return &r;
  return nullptr;
}

// ------------------------------------------------------------------ state

struct Stored {
  json obj;
  std::string ns, name;
  std::string source;  // file it came from, or "generated"
};

// One change, for watches: the object as it was after the change.
struct Event {
  long long rv;
  std::string type;  // ADDED | MODIFIED | DELETED
  std::string resource, ns;
  json obj;          // without kind/apiVersion (added per request version)
};

// A rule of a Role or ClusterRole, as it applies to one user.
struct RbacRule {
  std::set<std::string> groups, resources, verbs, names;
  std::string ns;  // "" = every namespace (a ClusterRole bound cluster-wide)
};

struct State {
  Options opt;
  // resource name -> key ("ns/name" or "name") -> object; std::map orders keys
  // bytewise like etcd orders "/registry/<resource>/<ns>/<name>".
  std::map<std::string, std::map<std::string, Stored>> store;
  // The current resourceVersion: every write takes the next one, lists
  // report it. Guarded (with store, events, pending) by mu.
  long long list_rv = 1;
  std::shared_mutex mu;
  std::vector<Event> events;
  // "resource|key" -> when the simulated controller rolls that workload out.
  std::map<std::string, std::chrono::steady_clock::time_point> pending;
  std::atomic<long> patches_seen{0};
  bool rbac_on = false;
  std::map<std::string, std::vector<RbacRule>> rbac;  // user -> rules
  std::atomic<long> continue_seen{0};
  std::mutex log_mu;
  FILE *log = nullptr;
  std::string started = "2024-01-01T00:00:00Z";
};

State *g_state = nullptr;

bool version_enabled(const State &st, const std::string &group,
                     const std::string &version) {
  return st.opt.disabled_versions.count(group_version(group, version)) == 0;
}

// Groups in the order /apis lists them, with the versions enabled.
std::vector<std::pair<std::string, std::vector<std::string>>> served_groups(
    const State &st, bool core) {
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  for (const auto &r : resources()) {
    if (core != r.group.empty()) continue;
    auto it = std::find_if(out.begin(), out.end(),
                           [&](auto &p) { return p.first == r.group; });
    if (it == out.end()) {
      out.push_back({r.group, {}});
      it = out.end() - 1;
    }
    for (const auto &v : r.versions)
      if (version_enabled(st, r.group, v) &&
          std::find(it->second.begin(), it->second.end(), v) == it->second.end())
        it->second.push_back(v);
  }
  out.erase(std::remove_if(out.begin(), out.end(),
                           [](auto &p) { return p.second.empty(); }),
            out.end());
  // preference order: v1 before v1beta1 etc. (resources() lists them so)
  return out;
}

std::vector<const Resource *> resources_in(const State &st, const std::string &group,
                                           const std::string &version) {
  std::vector<const Resource *> out;
  if (!version_enabled(st, group, version)) return out;
  for (const auto &r : resources())
    if (r.group == group &&
        std::find(r.versions.begin(), r.versions.end(), version) != r.versions.end())
      out.push_back(&r);
  return out;
}

// ------------------------------------------------------------------ loading

void add_object(State &st, json obj, const std::string &source) {
  if (!obj.is_object()) {
    std::fprintf(stderr, "kube_api_server: %s: skipping a non-object item\n",
                 source.c_str());
    return;
  }
  std::string kind = obj.value("kind", "");
  const Resource *r = resource_by_kind(kind);
  if (!r) {
    std::fprintf(stderr, "kube_api_server: %s: skipping unsupported kind '%s'\n",
                 source.c_str(), kind.c_str());
    return;
  }
  if (!obj.contains("metadata") || !obj["metadata"].is_object())
    obj["metadata"] = json::object();
  auto &md = obj["metadata"];
  std::string name = md.contains("name") && md["name"].is_string()
                         ? md["name"].get<std::string>()
                         : "";
  if (name.empty()) {
    std::fprintf(stderr, "kube_api_server: %s: skipping a %s without metadata.name\n",
                 source.c_str(), kind.c_str());
    return;
  }
  std::string ns;
  if (r->namespaced) {
    ns = md.contains("namespace") && md["namespace"].is_string()
             ? md["namespace"].get<std::string>()
             : "";
    if (ns.empty()) ns = "default";
    md["namespace"] = ns;
  } else {
    md.erase("namespace");
  }
  std::string key = r->namespaced ? ns + "/" + name : name;
  // Same namespace/name twice (e.g. real/po.json and real/po_init.json are
  // both default/nginx): the later file replaces the earlier, as a second
  // "kubectl apply" would.
  st.store[r->name][key] = Stored{std::move(obj), ns, name, source};
}

bool load_file(State &st, const fs::path &p) {
  bool ok = false;
  std::string text = read_file(p.string(), &ok);
  if (!ok) {
    std::fprintf(stderr, "kube_api_server: cannot read %s\n", p.c_str());
    return false;
  }
  json doc;
  try {
    doc = json::parse(text);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "kube_api_server: %s: invalid JSON: %s\n", p.c_str(),
                 e.what());
    return false;
  }
  std::string kind = doc.is_object() ? doc.value("kind", "") : "";
  if (doc.is_object() && doc.contains("items") && doc["items"].is_array() &&
      (kind == "List" || (kind.size() > 4 && kind.ends_with("List")))) {
    std::string item_kind = kind == "List" ? "" : kind.substr(0, kind.size() - 4);
    std::string api_version = doc.value("apiVersion", "");
    for (auto item : doc["items"]) {
      if (item.is_object()) {
        if (!item.contains("kind") && !item_kind.empty()) item["kind"] = item_kind;
        if (!item.contains("apiVersion") && !api_version.empty())
          item["apiVersion"] = api_version;
      }
      add_object(st, std::move(item), p.string());
    }
  } else {
    add_object(st, std::move(doc), p.string());
  }
  return true;
}

bool load_path(State &st, const std::string &path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    std::vector<fs::path> files;
    for (const auto &e : fs::directory_iterator(path, ec))
      if (e.is_regular_file() && e.path().extension() == ".json")
        files.push_back(e.path());
    if (ec) {
      std::fprintf(stderr, "kube_api_server: cannot list %s: %s\n", path.c_str(),
                   ec.message().c_str());
      return false;
    }
    std::sort(files.begin(), files.end());
    for (const auto &f : files)
      if (!load_file(st, f)) return false;
    return true;
  }
  if (fs::is_regular_file(path, ec)) return load_file(st, path);
  std::fprintf(stderr, "kube_api_server: --objects %s: no such file or directory\n",
               path.c_str());
  return false;
}

std::string fake_uid(const std::string &seed) {
  unsigned long long h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : seed) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08llx-%04llx-4%03llx-8%03llx-%012llx",
                h >> 32, (h >> 16) & 0xffff, h & 0xfff, (h >> 20) & 0xfff,
                (h * 31) & 0xffffffffffffull);
  return buf;
}

void generate_deployments(State &st, int n) {
  for (int i = 0; i < n; ++i) {
    std::string name = "app-" + std::to_string(i);
    std::string ns = "gen-" + std::to_string(i % 5);
    std::string team = "team-" + std::to_string(i % 7);
    std::string image = "registry.example.com/" + team + "/" + name + ":1." +
                        std::to_string(i % 5);
    std::string init_image =
        "registry.example.com/base/init-" + std::to_string(i % 3) + ":v1";
    json labels = {{"app", name}, {"team", team}};
    json d = {
        {"apiVersion", "apps/v1"},
        {"kind", "Deployment"},
        {"metadata",
         {{"name", name},
          {"namespace", ns},
          {"uid", fake_uid(ns + "/" + name)},
          {"resourceVersion", std::to_string(1000 + i)},
          {"generation", 1},
          {"creationTimestamp", "2024-05-01T12:00:00Z"},
          {"labels", labels},
          {"annotations", {{"deployment.kubernetes.io/revision", "1"}}}}},
        {"spec",
         {{"replicas", 1},
          {"selector", {{"matchLabels", {{"app", name}}}}},
          {"template",
           {{"metadata", {{"labels", labels}}},
            {"spec",
             {{"initContainers",
               json::array({{{"name", "init"},
                             {"image", init_image},
                             {"command", json::array({"sh", "-c", "true"})},
                             {"imagePullPolicy", "IfNotPresent"}}})},
              {"containers",
               json::array({{{"name", "app"},
                             {"image", image},
                             {"ports", json::array({{{"containerPort", 8080},
                                                     {"protocol", "TCP"}}})},
                             {"imagePullPolicy", "IfNotPresent"}}})},
              {"restartPolicy", "Always"},
              {"terminationGracePeriodSeconds", 30},
              {"dnsPolicy", "ClusterFirst"},
              {"schedulerName", "default-scheduler"}}}}},
          {"strategy",
           {{"type", "RollingUpdate"},
            {"rollingUpdate", {{"maxUnavailable", "25%"}, {"maxSurge", "25%"}}}}},
          {"revisionHistoryLimit", 10},
          {"progressDeadlineSeconds", 600}}},
        {"status",
         {{"observedGeneration", 1},
          {"replicas", 1},
          {"updatedReplicas", 1},
          {"readyReplicas", 1},
          {"availableReplicas", 1}}}};
    add_object(st, std::move(d), "generated");
  }
}

// Namespaces: the ones loaded as objects plus every namespace an object is in.
void synthesize_namespaces(State &st) {
  std::set<std::string> seen;
  for (const auto &[res, objs] : st.store) {
    if (res == "namespaces") continue;
    for (const auto &[key, s] : objs)
      if (!s.ns.empty()) seen.insert(s.ns);
  }
  auto &nss = st.store["namespaces"];
  for (const auto &ns : seen) {
    if (nss.count(ns)) continue;
    json o = {{"apiVersion", "v1"},
              {"kind", "Namespace"},
              {"metadata",
               {{"name", ns},
                {"uid", fake_uid("namespace/" + ns)},
                {"resourceVersion", "10"},
                {"creationTimestamp", st.started},
                {"labels", {{"kubernetes.io/metadata.name", ns}}}}},
              {"spec", {{"finalizers", json::array({"kubernetes"})}}},
              {"status", {{"phase", "Active"}}}};
    nss[ns] = Stored{std::move(o), "", ns, "synthesized"};
  }
}

// ------------------------------------------------------------------ responses

json status_obj(int code, const std::string &reason, const std::string &message,
                json details = nullptr) {
  json s = {{"kind", "Status"},
            {"apiVersion", "v1"},
            {"metadata", json::object()},
            {"status", "Failure"},
            {"message", message},
            {"reason", reason}};
  if (!details.is_null()) s["details"] = std::move(details);
  s["code"] = code;
  return s;
}

void send_json(httplib::Response &res, int code, const json &body,
               const std::string &content_type = "application/json") {
  res.status = code;
  res.set_header("Cache-Control", "no-cache, private");
  res.set_content(body.dump(), content_type.c_str());
}

void send_status(httplib::Response &res, int code, const std::string &reason,
                 const std::string &message, json details = nullptr) {
  send_json(res, code, status_obj(code, reason, message, std::move(details)));
}

void send_not_found_path(httplib::Response &res) {
  send_status(res, 404, "NotFound", "the server could not find the requested resource",
              json::object());
}

// ------------------------------------------------------------------ auth

struct Identity {
  bool ok = false;
  std::string user;
  std::vector<std::string> groups;  // a client certificate's O
  std::string how = "none";  // for the log: token | basic | cert:CN | none
};

// Constant-time-ish compare is pointless in a test server; plain compare.
Identity authenticate(const State &st, const httplib::Request &req) {
  Identity id;
#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
  if (req.ssl && !st.opt.client_ca.empty()) {
    SSL *ssl = const_cast<SSL *>(req.ssl);
    X509 *cert = SSL_get1_peer_certificate(ssl);
    if (cert) {
      if (SSL_get_verify_result(ssl) == X509_V_OK) {
        char cn[256] = {0}, org[256] = {0};
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn,
                                  sizeof cn);
        if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert),
                                      NID_organizationName, org, sizeof org) > 0)
          id.groups.push_back(org);
        id.ok = true;
        id.user = cn;
        id.how = std::string("cert:") + cn;
      }
      X509_free(cert);
      if (id.ok) return id;
    }
  }
#endif
  std::string authz = req.get_header_value("Authorization");
  if (starts_with(authz, "Bearer ") || starts_with(authz, "bearer ")) {
    std::string tok = trim(authz.substr(7));
    bool match = !tok.empty() &&
                 std::find(st.opt.tokens.begin(), st.opt.tokens.end(), tok) !=
                     st.opt.tokens.end();
    for (const auto &f : st.opt.token_files) {
      if (match) break;
      bool ok = false;
      std::string want = trim(read_file(f, &ok));
      if (ok && !want.empty() && want == tok) match = true;
    }
    if (match) {
      id.ok = true;
      id.user = st.opt.token_user;
      id.how = "token";
    }
  } else if (starts_with(authz, "Basic ") || starts_with(authz, "basic ")) {
    auto dec = b64_decode(trim(authz.substr(6)));
    if (dec && std::find(st.opt.basics.begin(), st.opt.basics.end(), *dec) !=
                   st.opt.basics.end()) {
      id.ok = true;
      id.user = dec->substr(0, dec->find(':'));
      id.how = "basic";
    }
  }
  return id;
}

// ------------------------------------------------------------------ selectors

struct LabelReq {
  enum Op { Eq, Neq, In, NotIn, Exists, NotExists } op;
  std::string key;
  std::set<std::string> values;
};

std::optional<std::vector<LabelReq>> parse_label_selector(const std::string &sel,
                                                          std::string *err) {
  std::vector<LabelReq> out;
  std::vector<std::string> parts;
  std::string cur;
  int depth = 0;
  for (char c : sel) {
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (c == ',' && depth == 0) {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  for (auto p : parts) {
    p = trim(p);
    if (p.empty()) {
      if (parts.size() == 1) return out;  // empty selector matches everything
      *err = "found '', expected: identifier";
      return std::nullopt;
    }
    LabelReq r;
    size_t lp = p.find('(');
    if (lp != std::string::npos) {
      size_t rp = p.rfind(')');
      if (rp == std::string::npos || rp < lp) {
        *err = "unterminated set in '" + p + "'";
        return std::nullopt;
      }
      std::string head = trim(p.substr(0, lp));
      std::string body = p.substr(lp + 1, rp - lp - 1);
      if (head.ends_with(" notin")) {
        r.op = LabelReq::NotIn;
        r.key = trim(head.substr(0, head.size() - 6));
      } else if (head.ends_with(" in")) {
        r.op = LabelReq::In;
        r.key = trim(head.substr(0, head.size() - 3));
      } else {
        *err = "couldn't parse the selector string '" + p + "'";
        return std::nullopt;
      }
      for (auto v : split(body, ',')) r.values.insert(trim(v));
    } else if (p[0] == '!') {
      r.op = LabelReq::NotExists;
      r.key = trim(p.substr(1));
    } else if (auto pos = p.find("!="); pos != std::string::npos) {
      r.op = LabelReq::Neq;
      r.key = trim(p.substr(0, pos));
      r.values.insert(trim(p.substr(pos + 2)));
    } else if (auto pos2 = p.find("=="); pos2 != std::string::npos) {
      r.op = LabelReq::Eq;
      r.key = trim(p.substr(0, pos2));
      r.values.insert(trim(p.substr(pos2 + 2)));
    } else if (auto pos3 = p.find('='); pos3 != std::string::npos) {
      r.op = LabelReq::Eq;
      r.key = trim(p.substr(0, pos3));
      r.values.insert(trim(p.substr(pos3 + 1)));
    } else {
      r.op = LabelReq::Exists;
      r.key = p;
    }
    if (r.key.empty()) {
      *err = "found '', expected: identifier in '" + p + "'";
      return std::nullopt;
    }
    out.push_back(std::move(r));
  }
  return out;
}

bool labels_match(const json &obj, const std::vector<LabelReq> &reqs) {
  const json *labels = nullptr;
  if (obj.contains("metadata") && obj["metadata"].contains("labels") &&
      obj["metadata"]["labels"].is_object())
    labels = &obj["metadata"]["labels"];
  for (const auto &r : reqs) {
    std::optional<std::string> v;
    if (labels && labels->contains(r.key) && (*labels)[r.key].is_string())
      v = (*labels)[r.key].get<std::string>();
    switch (r.op) {
      case LabelReq::Exists:
        if (!v) return false;
        break;
      case LabelReq::NotExists:
        if (v) return false;
        break;
      case LabelReq::Eq:
      case LabelReq::In:
        if (!v || !r.values.count(*v)) return false;
        break;
      case LabelReq::Neq:
      case LabelReq::NotIn:
        if (v && r.values.count(*v)) return false;
        break;
    }
  }
  return true;
}

struct FieldReq {
  std::string field, value;
  bool neq = false;
};

std::set<std::string> supported_fields(const Resource &r) {
  std::set<std::string> f = {"metadata.name", "metadata.namespace"};
  if (r.name == "pods")
    f.insert({"spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
              "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
              "status.podIP", "status.nominatedNodeName"});
  if (r.name == "secrets") f.insert("type");
  if (r.name == "namespaces") f.insert("status.phase");
  if (r.name == "jobs") f.insert("status.successful");
  if (r.name == "replicasets" || r.name == "replicationcontrollers")
    f.insert("status.replicas");
  return f;
}

std::optional<std::vector<FieldReq>> parse_field_selector(const Resource &r,
                                                          const std::string &sel,
                                                          std::string *err) {
  std::vector<FieldReq> out;
  if (trim(sel).empty()) return out;
  auto allowed = supported_fields(r);
  for (auto p : split(sel, ',')) {
    p = trim(p);
    FieldReq f;
    size_t pos;
    if ((pos = p.find("!=")) != std::string::npos) {
      f.neq = true;
      f.field = p.substr(0, pos);
      f.value = p.substr(pos + 2);
    } else if ((pos = p.find("==")) != std::string::npos) {
      f.field = p.substr(0, pos);
      f.value = p.substr(pos + 2);
    } else if ((pos = p.find('=')) != std::string::npos) {
      f.field = p.substr(0, pos);
      f.value = p.substr(pos + 1);
    } else {
      *err = "invalid selector: '" + sel + "'; can't understand '" + p + "'";
      return std::nullopt;
    }
    f.field = trim(f.field);
    f.value = trim(f.value);
    if (!allowed.count(f.field)) {
      *err = "field label not supported: " + f.field;
      return std::nullopt;
    }
    out.push_back(std::move(f));
  }
  return out;
}

std::string field_value(const json &obj, const std::string &path) {
  const json *cur = &obj;
  for (const auto &part : split(path, '.')) {
    if (!cur->is_object() || !cur->contains(part)) {
      if (path == "spec.hostNetwork") return "false";
      return "";
    }
    cur = &(*cur)[part];
  }
  if (cur->is_string()) return cur->get<std::string>();
  if (cur->is_null()) return "";
  return cur->dump();
}

bool fields_match(const json &obj, const std::vector<FieldReq> &reqs) {
  for (const auto &f : reqs) {
    bool eq = field_value(obj, f.field) == f.value;
    if (eq == f.neq) return false;
  }
  return true;
}

// ------------------------------------------------------------------ discovery

json api_resource_list(const State &st, const std::string &group,
                       const std::string &version) {
  json list = json::array();
  for (const Resource *r : resources_in(st, group, version)) {
    json e = {{"name", r->name},
              {"singularName", r->singular},
              {"namespaced", r->namespaced},
              {"kind", r->kind},
              {"verbs", json::array({"create", "delete", "get", "list", "patch", "update",
                                     "watch"})}};
    if (!r->short_names.empty()) e["shortNames"] = r->short_names;
    if (!r->categories.empty()) e["categories"] = r->categories;
    list.push_back(std::move(e));
  }
  return {{"kind", "APIResourceList"},
          {"apiVersion", "v1"},
          {"groupVersion", group_version(group, version)},
          {"resources", list}};
}

json api_group(const std::string &group, const std::vector<std::string> &versions) {
  json vs = json::array();
  for (const auto &v : versions)
    vs.push_back({{"groupVersion", group + "/" + v}, {"version", v}});
  return {{"name", group},
          {"versions", vs},
          {"preferredVersion",
           {{"groupVersion", group + "/" + versions.front()},
            {"version", versions.front()}}}};
}

// Aggregated discovery (apidiscovery.k8s.io): the format kubectl asks for first.
json aggregated(const State &st, bool core, const std::string &av) {
  json items = json::array();
  for (const auto &[group, versions] : served_groups(st, core)) {
    json vers = json::array();
    for (const auto &v : versions) {
      json res = json::array();
      for (const Resource *r : resources_in(st, group, v)) {
        json e = {{"resource", r->name},
                  {"responseKind", {{"group", group}, {"version", v}, {"kind", r->kind}}},
                  {"scope", r->namespaced ? "Namespaced" : "Cluster"},
                  {"singularResource", r->singular},
                  {"verbs", json::array({"create", "delete", "get", "list", "patch",
                                         "update", "watch"})}};
        if (!r->short_names.empty()) e["shortNames"] = r->short_names;
        if (!r->categories.empty()) e["categories"] = r->categories;
        res.push_back(std::move(e));
      }
      vers.push_back({{"version", v}, {"resources", res}, {"freshness", "Current"}});
    }
    json md = {{"creationTimestamp", nullptr}};
    if (!group.empty()) md = {{"name", group}, {"creationTimestamp", nullptr}};
    items.push_back({{"metadata", md}, {"versions", vers}});
  }
  return {{"kind", "APIGroupDiscoveryList"},
          {"apiVersion", "apidiscovery.k8s.io/" + av},
          {"metadata", json::object()},
          {"items", items}};
}

// Parses an Accept header into media types with parameters.
struct MediaType {
  std::string type;
  std::map<std::string, std::string> params;
};

std::vector<MediaType> parse_accept(const std::string &accept) {
  std::vector<MediaType> out;
  for (const auto &part : split(accept, ',')) {
    auto fields = split(part, ';');
    MediaType m;
    m.type = trim(fields[0]);
    for (size_t i = 1; i < fields.size(); ++i) {
      auto kv = trim(fields[i]);
      auto eq = kv.find('=');
      if (eq == std::string::npos) continue;
      m.params[trim(kv.substr(0, eq))] = trim(kv.substr(eq + 1));
    }
    if (!m.type.empty()) out.push_back(std::move(m));
  }
  return out;
}

// The first acceptable "as=" kind the client prefers among `wanted`; "" when
// the client takes plain JSON first.
std::string preferred_as(const std::string &accept, const std::string &as,
                         const std::vector<std::string> &versions,
                         std::string *version) {
  for (const auto &m : parse_accept(accept)) {
    if (m.type != "application/json" && m.type != "*/*" && m.type != "application/*")
      continue;
    auto a = m.params.find("as");
    if (a == m.params.end()) return "";  // plain JSON preferred
    if (a->second != as) continue;
    auto v = m.params.find("v");
    if (v == m.params.end()) continue;
    if (std::find(versions.begin(), versions.end(), v->second) == versions.end())
      continue;
    *version = v->second;
    return as;
  }
  return "";
}

void serve_discovery_root(State &st, const httplib::Request &req,
                          httplib::Response &res, bool core) {
  res.set_header("Vary", "Accept");
  if (st.opt.aggregated_discovery) {
    std::string v;
    if (!preferred_as(req.get_header_value("Accept"), "APIGroupDiscoveryList",
                      {"v2", "v2beta1"}, &v)
             .empty()) {
      send_json(res, 200, aggregated(st, core, v),
                "application/json;g=apidiscovery.k8s.io;v=" + v +
                    ";as=APIGroupDiscoveryList");
      return;
    }
  }
  if (core) {
    json body = {{"kind", "APIVersions"},
                 {"versions", json::array({"v1"})},
                 {"serverAddressByClientCIDRs",
                  json::array({{{"clientCIDR", "0.0.0.0/0"},
                                {"serverAddress", req.local_addr + ":" +
                                                      std::to_string(req.local_port)}}})}};
    if (!version_enabled(st, "", "v1")) body["versions"] = json::array();
    send_json(res, 200, body);
    return;
  }
  json groups = json::array();
  for (const auto &[g, vs] : served_groups(st, false)) groups.push_back(api_group(g, vs));
  send_json(res, 200, {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", groups}});
}

// ------------------------------------------------------------------ tables

std::string age_of(const json &obj) {
  std::string ts = field_value(obj, "metadata.creationTimestamp");
  std::tm tm{};
  if (ts.empty() || !strptime(ts.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm)) return "<unknown>";
  time_t then = timegm(&tm);
  long long d = (long long)std::time(nullptr) - (long long)then;
  if (d < 0) d = 0;
  if (d < 120) return std::to_string(d) + "s";
  if (d < 7200) return std::to_string(d / 60) + "m";
  if (d < 2 * 86400) return std::to_string(d / 3600) + "h";
  if (d < 365LL * 86400) return std::to_string(d / 86400) + "d";
  return std::to_string(d / (365LL * 86400)) + "y";
}

std::string images_of(const json &obj) {
  const json *spec = nullptr;
  if (obj.contains("spec")) spec = &obj["spec"];
  // workload -> template -> spec; cronjob -> jobTemplate -> spec -> template -> spec
  auto dig = [](const json *j, std::initializer_list<const char *> path) -> const json * {
    for (const char *p : path) {
      if (!j || !j->is_object() || !j->contains(p)) return nullptr;
      j = &(*j)[p];
    }
    return j;
  };
  const json *pod = nullptr;
  if (obj.value("kind", "") == "Pod") pod = spec;
  if (!pod) pod = dig(&obj, {"spec", "template", "spec"});
  if (!pod) pod = dig(&obj, {"template", "spec"});
  if (!pod) pod = dig(&obj, {"spec", "jobTemplate", "spec", "template", "spec"});
  std::string out;
  if (pod && pod->contains("containers") && (*pod)["containers"].is_array())
    for (const auto &c : (*pod)["containers"])
      if (c.contains("image") && c["image"].is_string())
        out += (out.empty() ? "" : ",") + c["image"].get<std::string>();
  return out;
}

json make_table(const Resource &r, const std::vector<const Stored *> &items,
                const std::string &table_version, bool include_object,
                const json &list_meta) {
  json cols = json::array(
      {{{"name", "Name"}, {"type", "string"}, {"format", "name"},
        {"description", "Name must be unique within a namespace."}, {"priority", 0}}});
  bool workload = r.name != "namespaces" && r.name != "secrets" &&
                  r.name != "serviceaccounts" && r.name != "configmaps" &&
                  r.name != "nodes";
  if (workload)
    cols.push_back({{"name", "Images"}, {"type", "string"}, {"format", ""},
                    {"description", "Container images."}, {"priority", 0}});
  if (r.name == "namespaces")
    cols.push_back({{"name", "Status"}, {"type", "string"}, {"format", ""},
                    {"description", "Phase."}, {"priority", 0}});
  cols.push_back({{"name", "Age"}, {"type", "string"}, {"format", ""},
                  {"description", "CreationTimestamp."}, {"priority", 0}});
  json rows = json::array();
  for (const Stored *s : items) {
    json cells = json::array({s->name});
    if (workload) cells.push_back(images_of(s->obj));
    if (r.name == "namespaces") cells.push_back(field_value(s->obj, "status.phase"));
    cells.push_back(age_of(s->obj));
    json row = {{"cells", cells}};
    if (include_object) {
      json md = s->obj.contains("metadata") ? s->obj["metadata"] : json::object();
      md.erase("managedFields");
      row["object"] = {{"kind", "PartialObjectMetadata"},
                       {"apiVersion", "meta.k8s.io/v1"},
                       {"metadata", md}};
    }
    rows.push_back(std::move(row));
  }
  return {{"kind", "Table"},
          {"apiVersion", "meta.k8s.io/" + table_version},
          {"metadata", list_meta},
          {"columnDefinitions", cols},
          {"rows", rows}};
}

// ------------------------------------------------------------------ lists

struct ContinueToken {
  long long rv = 0;
  std::string start;  // resume at the first key >= start
  std::string resource, ns;
};

std::string encode_continue(const ContinueToken &t) {
  json j = {{"v", "meta.k8s.io/v1"}, {"rv", t.rv}, {"start", t.start},
            {"resource", t.resource}, {"namespace", t.ns}};
  return b64_encode(j.dump(), true);
}

std::optional<ContinueToken> decode_continue(const std::string &s, std::string *err) {
  auto raw = b64_decode(s);
  if (!raw) {
    *err = "continue key is not valid: illegal base64 data";
    return std::nullopt;
  }
  try {
    auto j = json::parse(*raw);
    if (j.value("v", "") != "meta.k8s.io/v1") {
      *err = "continue key is not valid: server does not recognize this encoded version";
      return std::nullopt;
    }
    ContinueToken t;
    t.rv = j.at("rv").get<long long>();
    t.start = j.at("start").get<std::string>();
    t.resource = j.at("resource").get<std::string>();
    t.ns = j.at("namespace").get<std::string>();
    return t;
  } catch (const std::exception &) {
    *err = "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)";
    return std::nullopt;
  }
}

std::string forbidden_message(const Resource &r, const std::string &user,
                              const std::string &verb, const std::string &ns,
                              const std::string &name) {
  std::string m = qualified(r);
  if (!name.empty()) m += " \"" + name + "\"";
  m += " is forbidden: User \"" + user + "\" cannot " + verb + " resource \"" +
       r.name + "\" in API group \"" + r.group + "\"";
  if (ns.empty())
    m += " at the cluster scope";
  else
    m += " in the namespace \"" + ns + "\"";
  return m;
}

// What RBAC would decide: with --rbac, system:masters may do anything and
// everyone else what the rules bound to them allow.
bool rbac_allows(const State &st, const Identity &id, const std::string &verb,
                 const Resource &r, const std::string &ns, const std::string &name) {
  if (!st.rbac_on) return true;
  if (std::find(id.groups.begin(), id.groups.end(), "system:masters") != id.groups.end())
    return true;
  auto it = st.rbac.find(id.user);
  if (it == st.rbac.end()) return false;
  auto has = [](const std::set<std::string> &s, const std::string &v) {
    return s.count(v) || s.count("*");
  };
  for (const auto &rule : it->second) {
    if (!rule.ns.empty() && rule.ns != ns) continue;
    if (!has(rule.groups, r.group) || !has(rule.resources, r.name) || !has(rule.verbs, verb))
      continue;
    // resourceNames restrict requests that name an object (not list, watch, create).
    if (!rule.names.empty() && (name.empty() || !rule.names.count(name))) continue;
    return true;
  }
  return false;
}

bool check_forbidden(const State &st, const Resource &r, const Identity &id,
                     const std::string &verb, const std::string &ns,
                     const std::string &name, httplib::Response &res) {
  bool forbidden = ((verb == "list" || verb == "get") && st.opt.forbid.count(r.name)) ||
                   (verb == "list" && ns.empty() && st.opt.forbid_cluster.count(r.name)) ||
                   !rbac_allows(st, id, verb, r, ns, name);
  if (!forbidden) return false;
  json details = {{"group", r.group}, {"kind", r.name}};
  if (!name.empty()) details = {{"name", name}, {"group", r.group}, {"kind", r.name}};
  send_status(res, 403, "Forbidden", forbidden_message(r, id.user, verb, ns, name),
              details);
  return true;
}

json object_for_output(const Stored &s, const std::string &group,
                       const std::string &version, bool with_kind, const Resource &r) {
  json o = s.obj;
  if (with_kind) {
    // kind/apiVersion first, as kube-apiserver writes them
    json out = {{"kind", r.kind}, {"apiVersion", group_version(group, version)}};
    for (auto it = o.begin(); it != o.end(); ++it)
      if (it.key() != "kind" && it.key() != "apiVersion") out[it.key()] = it.value();
    return out;
  }
  o.erase("kind");
  o.erase("apiVersion");
  return o;
}

void serve_watch(State &st, const httplib::Request &req, httplib::Response &res,
                 const Identity &id, const Resource &r, const std::string &group,
                 const std::string &version, const std::string &ns);

void serve_list(State &st, const httplib::Request &req, httplib::Response &res,
                const Identity &id, const Resource &r, const std::string &group,
                const std::string &version, const std::string &ns) {
  if (req.has_param("watch") && req.get_param_value("watch") != "false" &&
      req.get_param_value("watch") != "0")
    return serve_watch(st, req, res, id, r, group, version, ns);
  if (check_forbidden(st, r, id, "list", ns, "", res)) return;
  long long limit = 0;
  if (req.has_param("limit")) {
    try {
      size_t used = 0;
      std::string l = req.get_param_value("limit");
      limit = std::stoll(l, &used);
      if (used != l.size()) throw std::invalid_argument("limit");
    } catch (const std::exception &) {
      send_status(res, 400, "BadRequest",
                  "limit: Invalid value: \"" + req.get_param_value("limit") +
                      "\": must be an integer");
      return;
    }
  }
  std::string cont = req.has_param("continue") ? req.get_param_value("continue") : "";
  long long rv = st.list_rv;
  std::string start = ns.empty() ? "" : ns + "/";
  if (!cont.empty()) {
    long n = ++st.continue_seen;
    if (!req.get_param_value("resourceVersion").empty()) {
      send_status(res, 400, "BadRequest",
                  "specifying resource version is not allowed when using continue");
      return;
    }
    std::string err;
    auto tok = decode_continue(cont, &err);
    if (!tok) {
      send_status(res, 400, "BadRequest", err);
      return;
    }
    if (tok->resource != r.name || tok->ns != ns) {
      send_status(res, 400, "BadRequest",
                  "continue key is not valid: the continue token was issued for a "
                  "different list (" + tok->resource +
                      (tok->ns.empty() ? "" : " in namespace " + tok->ns) + ")");
      return;
    }
    if (st.opt.expire_continue > 0 && n == st.opt.expire_continue) {
      if (st.opt.expire_inconsistent) {
        json s = status_obj(
            410, "Expired",
            "The provided continue parameter is too old to display a consistent list "
            "result. You can start a new list without the continue parameter, or use "
            "the continue token in this response to retrieve the remainder of the "
            "results. Continuing with the provided token results in an inconsistent "
            "list - objects that were created, modified, or deleted between the time "
            "the first chunk was returned and now may show up in the list.");
        ContinueToken again = *tok;
        again.rv = -1;
        s["metadata"] = {{"continue", encode_continue(again)}};
        send_json(res, 410, s);
      } else {
        send_status(res, 410, "Expired",
                    "The provided continue parameter is too old to display a "
                    "consistent list result. You can start a new list without the "
                    "continue parameter.");
      }
      return;
    }
    if (tok->rv > 0) rv = tok->rv;
    start = tok->start;
  }
  std::string err;
  auto lsel = parse_label_selector(req.get_param_value("labelSelector"), &err);
  if (!lsel) {
    send_status(res, 400, "BadRequest", "unable to parse requirement: " + err);
    return;
  }
  auto fsel = parse_field_selector(r, req.get_param_value("fieldSelector"), &err);
  if (!fsel) {
    send_status(res, 400, "BadRequest", err);
    return;
  }
  bool filtered = !lsel->empty() || !fsel->empty();

  std::vector<const Stored *> matched;
  auto sit = st.store.find(r.name);
  if (sit != st.store.end()) {
    const auto &objs = sit->second;
    std::string prefix = ns.empty() ? "" : ns + "/";
    for (auto it = objs.lower_bound(start); it != objs.end(); ++it) {
      if (!starts_with(it->first, prefix)) break;
      if (filtered && (!labels_match(it->second.obj, *lsel) ||
                       !fields_match(it->second.obj, *fsel)))
        continue;
      matched.push_back(&it->second);
    }
  }
  size_t take = matched.size();
  if (limit > 0 && (size_t)limit < matched.size()) take = (size_t)limit;

  json meta = {{"resourceVersion", std::to_string(rv)}};
  if (take < matched.size()) {
    const Stored *last = matched[take - 1];
    ContinueToken t;
    t.rv = rv;
    t.start = (r.namespaced ? last->ns + "/" + last->name : last->name) + std::string(1, '\0');
    t.resource = r.name;
    t.ns = ns;
    meta["continue"] = encode_continue(t);
    if (!filtered) meta["remainingItemCount"] = (long long)(matched.size() - take);
  }
  matched.resize(take);

  std::string tv;
  if (!st.opt.no_table &&
      !preferred_as(req.get_header_value("Accept"), "Table", {"v1", "v1beta1"}, &tv)
           .empty()) {
    // includeObject: None | Metadata (default) | Object
    std::string inc = req.get_param_value("includeObject");
    send_json(res, 200, make_table(r, matched, tv, inc != "None", meta),
              "application/json");
    return;
  }

  json items = json::array();
  for (const Stored *s : matched)
    items.push_back(object_for_output(*s, group, version, st.opt.list_item_kinds, r));
  json body = {{"kind", r.kind + "List"},
               {"apiVersion", group_version(group, version)},
               {"metadata", meta},
               {"items", std::move(items)}};
  send_json(res, 200, body);
}

void serve_get(State &st, const httplib::Request &req, httplib::Response &res,
               const Identity &id, const Resource &r, const std::string &group,
               const std::string &version, const std::string &ns,
               const std::string &name) {
  if (check_forbidden(st, r, id, "get", ns, name, res)) return;
  const Stored *found = nullptr;
  auto sit = st.store.find(r.name);
  if (sit != st.store.end()) {
    auto it = sit->second.find(r.namespaced ? ns + "/" + name : name);
    if (it != sit->second.end()) found = &it->second;
  }
  if (!found) {
    json details = {{"name", name}, {"kind", r.name}};
    if (!r.group.empty()) details = {{"name", name}, {"group", r.group}, {"kind", r.name}};
    send_status(res, 404, "NotFound", qualified(r) + " \"" + name + "\" not found",
                details);
    return;
  }
  std::string tv;
  if (!st.opt.no_table &&
      !preferred_as(req.get_header_value("Accept"), "Table", {"v1", "v1beta1"}, &tv)
           .empty()) {
    std::string inc = req.get_param_value("includeObject");
    send_json(res, 200,
              make_table(r, {found}, tv, inc != "None",
                         {{"resourceVersion", field_value(found->obj,
                                                          "metadata.resourceVersion")}}));
    return;
  }
  send_json(res, 200, object_for_output(*found, group, version, true, r));
}

// ------------------------------------------------------------------ writes

std::string now_rfc3339() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string key_of(const Resource &r, const std::string &ns, const std::string &name) {
  return r.namespaced ? ns + "/" + name : name;
}

Stored *find_stored(State &st, const Resource &r, const std::string &ns,
                    const std::string &name) {
  auto sit = st.store.find(r.name);
  if (sit == st.store.end()) return nullptr;
  auto it = sit->second.find(key_of(r, ns, name));
  return it == sit->second.end() ? nullptr : &it->second;
}

json not_found_details(const Resource &r, const std::string &name) {
  json d = {{"name", name}, {"kind", r.name}};
  if (!r.group.empty()) d = {{"name", name}, {"group", r.group}, {"kind", r.name}};
  return d;
}

void send_not_found(httplib::Response &res, const Resource &r, const std::string &name) {
  send_status(res, 404, "NotFound", qualified(r) + " \"" + name + "\" not found",
              not_found_details(r, name));
}

// Kinds whose metadata.generation counts spec changes (custom resources too).
bool has_generation(const Resource &r) {
  static const std::set<std::string> builtin_without = {
      "pods", "namespaces", "secrets", "serviceaccounts", "configmaps", "nodes", "podtemplates"};
  return !builtin_without.count(r.name);
}

bool rolls_out(const Resource &r) {
  return r.name == "deployments" || r.name == "statefulsets" || r.name == "daemonsets";
}

// kube-apiserver drops empty maps (omitempty) from what it stores.
void normalize_metadata(json &obj) {
  if (!obj.contains("metadata") || !obj["metadata"].is_object()) return;
  auto &md = obj["metadata"];
  for (const char *k : {"annotations", "labels"})
    if (md.contains(k) && (md[k].is_null() || (md[k].is_object() && md[k].empty())))
      md.erase(k);
}

const json *dig(const json &j, std::initializer_list<const char *> path) {
  const json *cur = &j;
  for (const char *p : path) {
    if (!cur->is_object() || !cur->contains(p)) return nullptr;
    cur = &(*cur)[p];
  }
  return cur;
}

const json *pod_template_of(const json &obj, const Resource &r) {
  if (r.name == "cronjobs") return dig(obj, {"spec", "jobTemplate", "spec", "template"});
  return dig(obj, {"spec", "template"});
}

void record_event(State &st, const std::string &type, const Resource &r, const Stored &s) {
  st.events.push_back({st.list_rv, type, r.name, s.ns, s.obj});
  if (st.events.size() > 20000) st.events.erase(st.events.begin(), st.events.begin() + 10000);
}

// The simulated controllers act on this object a little later.
void schedule_rollout(State &st, const Resource &r, const std::string &key) {
  st.pending[r.name + "|" + key] =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(st.opt.rollout_delay_ms);
}

// Strategic merge patch, for the lists kube-apiserver merges by key in the
// types image-migrator and kubectl patch (pod specs, metadata). Other lists
// are replaced, as the patch strategy "replace" (the default) does.
const std::map<std::string, std::string> &merge_keys() {
  static const std::map<std::string, std::string> m = {
      {"containers", "name"},        {"initContainers", "name"},
      {"ephemeralContainers", "name"}, {"volumes", "name"},
      {"env", "name"},                {"volumeMounts", "mountPath"},
      {"volumeDevices", "devicePath"}, {"ports", "containerPort"},
      {"imagePullSecrets", "name"},   {"ownerReferences", "uid"},
      {"conditions", "type"},         {"hostAliases", "ip"},
      {"topologySpreadConstraints", "topologyKey"}};
  return m;
}

json strip_directives(const json &patch) {
  if (patch.is_object()) {
    json out = json::object();
    for (auto it = patch.begin(); it != patch.end(); ++it)
      if (!starts_with(it.key(), "$") && !it.value().is_null())
        out[it.key()] = strip_directives(it.value());
    return out;
  }
  if (patch.is_array()) {
    json out = json::array();
    for (const auto &e : patch) out.push_back(strip_directives(e));
    return out;
  }
  return patch;
}

void strategic_merge(json &target, const json &patch) {
  if (!patch.is_object()) {
    target = patch;
    return;
  }
  if (patch.contains("$patch") && patch["$patch"] == "replace") {
    json p = patch;
    p.erase("$patch");
    target = strip_directives(p);
    return;
  }
  if (!target.is_object()) target = json::object();
  std::map<std::string, json> orders;
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    const std::string &k = it.key();
    const json &v = it.value();
    if (k == "$patch" || k == "$retainKeys") continue;
    if (starts_with(k, "$setElementOrder/")) {
      orders[k.substr(17)] = v;
      continue;
    }
    if (starts_with(k, "$deleteFromPrimitiveList/")) {
      std::string field = k.substr(25);
      if (target.contains(field) && target[field].is_array() && v.is_array()) {
        json kept = json::array();
        for (const auto &e : target[field])
          if (std::find(v.begin(), v.end(), e) == v.end()) kept.push_back(e);
        target[field] = kept;
      }
      continue;
    }
    if (v.is_null()) {
      target.erase(k);
      continue;
    }
    auto mk = merge_keys().find(k);
    if (v.is_array() && mk != merge_keys().end()) {
      const std::string &mkey = mk->second;
      if (!target.contains(k) || !target[k].is_array()) target[k] = json::array();
      json &list = target[k];
      for (const auto &pe : v) {
        if (!pe.is_object() || !pe.contains(mkey)) continue;
        auto match = std::find_if(list.begin(), list.end(), [&](const json &e) {
          return e.is_object() && e.contains(mkey) && e[mkey] == pe[mkey];
        });
        if (pe.contains("$patch") && pe["$patch"] == "delete") {
          if (match != list.end()) list.erase(match);
        } else if (match != list.end()) {
          strategic_merge(*match, pe);
        } else {
          list.push_back(strip_directives(pe));
        }
      }
      continue;
    }
    if (v.is_object() && target.contains(k) && target[k].is_object()) {
      strategic_merge(target[k], v);
      continue;
    }
    target[k] = strip_directives(v);
  }
  if (patch.contains("$retainKeys") && patch["$retainKeys"].is_array()) {
    std::set<std::string> keep;
    for (const auto &e : patch["$retainKeys"])
      if (e.is_string()) keep.insert(e.get<std::string>());
    for (auto it = target.begin(); it != target.end();)
      it = keep.count(it.key()) ? std::next(it) : target.erase(it);
  }
  // $setElementOrder: when it names exactly the list's elements, their order.
  for (const auto &[field, order] : orders) {
    auto mk = merge_keys().find(field);
    if (mk == merge_keys().end() || !target.contains(field) || !target[field].is_array() ||
        !order.is_array() || order.size() != target[field].size())
      continue;
    json sorted = json::array();
    for (const auto &o : order)
      for (const auto &e : target[field])
        if (o.is_object() && e.is_object() && o.contains(mk->second) &&
            e.contains(mk->second) && o[mk->second] == e[mk->second])
          sorted.push_back(e);
    if (sorted.size() == target[field].size()) target[field] = sorted;
  }
}

std::string rv_of(const json &obj) { return field_value(obj, "metadata.resourceVersion"); }

// Why an update of `old` to `now` is refused as kube-apiserver's validation
// would refuse it: {field, cause} ({"", ""} = allowed). A Pod's spec may only
// change images (and a few fields), a Job's pod template not at all.
std::pair<std::string, std::string> immutable_violation(const Resource &r, const json &old,
                                                        const json &now) {
  const std::string pod_rule =
      "Forbidden: pod updates may not change fields other than "
      "`spec.containers[*].image`,`spec.initContainers[*].image`,"
      "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
      "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it "
      "was previously negative)";
  if (r.name == "pods") {
    json a = old.contains("spec") ? old["spec"] : json::object();
    json b = now.contains("spec") ? now["spec"] : json::object();
    for (const char *field : {"containers", "initContainers"}) {
      if (!a.contains(field) && !b.contains(field)) continue;
      if (!a.contains(field) || !b.contains(field) || !a[field].is_array() ||
          !b[field].is_array() || a[field].size() != b[field].size())
        return {"spec", pod_rule};
      for (size_t i = 0; i < a[field].size(); ++i)
        if (a[field][i].is_object() && b[field][i].is_object() && a[field][i].contains("image"))
          b[field][i]["image"] = a[field][i]["image"];
    }
    for (const char *field : {"activeDeadlineSeconds", "tolerations"}) {
      if (a.contains(field)) b[field] = a[field];
      else b.erase(field);
    }
    if (a != b) return {"spec", pod_rule};
    return {};
  }
  if (r.name == "jobs") {
    const json *a = dig(old, {"spec", "template"});
    const json *b = dig(now, {"spec", "template"});
    if ((a == nullptr) != (b == nullptr) || (a && *a != *b))
      return {"spec.template", "Invalid value: core.PodTemplateSpec{...}: field is immutable"};
  }
  return {};
}

// Common tail of PUT and PATCH: `next` replaces the stored object `s`.
void commit_update(State &st, const httplib::Request &req, httplib::Response &res,
                   const Resource &r, const std::string &group, const std::string &version,
                   Stored &s, json next) {
  const std::string name = s.name;
  if (!next.is_object()) {
    send_status(res, 400, "BadRequest", "the body of the request is not a JSON object");
    return;
  }
  if (!next.contains("metadata") || !next["metadata"].is_object()) next["metadata"] = json::object();
  // (No reference into `next` is kept: ordered_json moves its members on insert and erase.)
  if (field_value(next, "metadata.name") != name) {
    if (next["metadata"].contains("name"))
      return send_status(res, 400, "BadRequest",
                         "the name of the object (" + field_value(next, "metadata.name") +
                             ") does not match the name on the URL (" + name + ")");
    next["metadata"]["name"] = name;
  }
  if (r.namespaced) next["metadata"]["namespace"] = s.ns;
  // A resourceVersion in the request is a precondition: someone else's
  // change in between is a conflict, to be retried on a fresh read.
  std::string want = rv_of(next);
  if (!want.empty() && want != rv_of(s.obj)) {
    send_status(res, 409, "Conflict",
                "Operation cannot be fulfilled on " + qualified(r) + " \"" + name +
                    "\": the object has been modified; please apply your changes to the "
                    "latest version and try again",
                not_found_details(r, name));
    return;
  }
  for (const char *k : {"uid", "creationTimestamp", "generation"})
    if (s.obj["metadata"].contains(k)) next["metadata"][k] = s.obj["metadata"][k];
    else next["metadata"].erase(k);
  next["metadata"]["resourceVersion"] = rv_of(s.obj);
  // The main resource does not write status (the status subresource does).
  if (r.name != "configmaps" && r.name != "secrets") {
    if (s.obj.contains("status")) next["status"] = s.obj["status"];
    else next.erase("status");
  }
  next.erase("kind");
  next.erase("apiVersion");
  normalize_metadata(next);
  json old = s.obj;
  old.erase("kind");
  old.erase("apiVersion");
  auto [field, cause] = immutable_violation(r, old, next);
  if (!field.empty()) {
    // As kube-apiserver's: details name the kind and carry the causes (kubectl prints them).
    std::string qualified_kind = r.group.empty() ? r.kind : r.kind + "." + r.group;
    json details = {{"name", name}, {"kind", r.kind},
                    {"causes", json::array({{{"reason", starts_with(cause, "Forbidden")
                                                            ? "FieldValueForbidden"
                                                            : "FieldValueInvalid"},
                                             {"message", cause}, {"field", field}}})}};
    if (!r.group.empty()) details["group"] = r.group;
    send_status(res, 422, "Invalid",
                qualified_kind + " \"" + name + "\" is invalid: " + field + ": " + cause, details);
    return;
  }
  bool dry = req.get_param_value("dryRun") == "All";
  if (next == old) {  // a no-op write stores nothing and keeps the version
    send_json(res, 200, object_for_output(s, group, version, true, r));
    return;
  }
  bool spec_changed = (old.contains("spec") ? old["spec"] : json()) !=
                      (next.contains("spec") ? next["spec"] : json());
  const json *tpl_old = pod_template_of(old, r), *tpl_new = pod_template_of(next, r);
  bool template_changed = (tpl_old == nullptr) != (tpl_new == nullptr) ||
                          (tpl_old && *tpl_old != *tpl_new);
  if (spec_changed && has_generation(r))
    next["metadata"]["generation"] = (s.obj["metadata"].contains("generation") &&
                                s.obj["metadata"]["generation"].is_number_integer()
                            ? s.obj["metadata"]["generation"].get<long long>()
                            : 1) +
                       1;
  if (dry) {
    Stored tmp{next, s.ns, s.name, s.source};
    send_json(res, 200, object_for_output(tmp, group, version, true, r));
    return;
  }
  next["metadata"]["resourceVersion"] = std::to_string(++st.list_rv);
  s.obj = std::move(next);
  record_event(st, "MODIFIED", r, s);
  if ((rolls_out(r) && template_changed) || (r.name == "pods" && spec_changed))
    schedule_rollout(st, r, key_of(r, s.ns, s.name));
  send_json(res, 200, object_for_output(s, group, version, true, r));
}

std::optional<json> parse_body(const httplib::Request &req, httplib::Response &res) {
  std::string type = req.get_header_value("Content-Type");
  type = trim(type.substr(0, type.find(';')));
  if (req.method != "PATCH" && type != "application/json" && !type.empty()) {
    send_status(res, 415, "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types "
                "include: application/json (this test server speaks JSON only)");
    return std::nullopt;
  }
  try {
    return json::parse(req.body);
  } catch (const std::exception &e) {
    send_status(res, 400, "BadRequest",
                std::string("the body of the request was not valid JSON: ") + e.what());
    return std::nullopt;
  }
}

void serve_create(State &st, const httplib::Request &req, httplib::Response &res,
                  const Identity &id, const Resource &r, const std::string &group,
                  const std::string &version, const std::string &ns) {
  if (check_forbidden(st, r, id, "create", ns, "", res)) return;
  auto body = parse_body(req, res);
  if (!body) return;
  json obj = std::move(*body);
  if (!obj.is_object()) return send_status(res, 400, "BadRequest", "the body is not an object");
  std::string kind = obj.value("kind", "");
  if (!kind.empty() && kind != r.kind)
    return send_status(res, 400, "BadRequest",
                       "the kind of the object (" + kind + ") does not match the resource (" +
                           r.name + ")");
  if (!obj.contains("metadata") || !obj["metadata"].is_object()) obj["metadata"] = json::object();
  json &md = obj["metadata"];  // (used before any member of obj is added or erased)
  std::string name = field_value(obj, "metadata.name");
  if (name.empty() && !field_value(obj, "metadata.generateName").empty())
    name = field_value(obj, "metadata.generateName") + fake_uid(now_rfc3339() + std::to_string(st.list_rv)).substr(0, 5);
  if (name.empty())
    return send_status(res, 422, "Invalid",
                       r.kind + " \"\" is invalid: metadata.name: Required value: name or "
                                "generateName is required");
  md["name"] = name;
  if (r.namespaced) {
    std::string body_ns = field_value(obj, "metadata.namespace");
    if (!body_ns.empty() && body_ns != ns)
      return send_status(res, 400, "BadRequest",
                         "the namespace of the provided object does not match the namespace "
                         "sent on the request");
    if (!st.store["namespaces"].count(ns))
      return send_status(res, 404, "NotFound", "namespaces \"" + ns + "\" not found",
                         {{"name", ns}, {"kind", "namespaces"}});
    md["namespace"] = ns;
  }
  if (find_stored(st, r, ns, name)) {
    send_status(res, 409, "AlreadyExists", qualified(r) + " \"" + name + "\" already exists",
                not_found_details(r, name));
    return;
  }
  md["uid"] = fake_uid(r.name + "/" + ns + "/" + name + "/" + std::to_string(st.list_rv));
  md["creationTimestamp"] = now_rfc3339();
  if (has_generation(r)) md["generation"] = 1;
  // md is not used below: erasing members of obj moves them.
  obj.erase("kind");
  obj.erase("apiVersion");
  normalize_metadata(obj);
  Stored s{obj, r.namespaced ? ns : "", name, "created"};
  if (req.get_param_value("dryRun") == "All") {
    send_json(res, 201, object_for_output(s, group, version, true, r));
    return;
  }
  s.obj["metadata"]["resourceVersion"] = std::to_string(++st.list_rv);
  if (r.name == "namespaces") s.obj["status"] = {{"phase", "Active"}};
  Stored &stored = st.store[r.name][key_of(r, ns, name)] = std::move(s);
  record_event(st, "ADDED", r, stored);
  if (rolls_out(r)) schedule_rollout(st, r, key_of(r, ns, name));
  send_json(res, 201, object_for_output(stored, group, version, true, r));
}

void serve_update(State &st, const httplib::Request &req, httplib::Response &res,
                  const Identity &id, const Resource &r, const std::string &group,
                  const std::string &version, const std::string &ns, const std::string &name) {
  if (check_forbidden(st, r, id, "update", ns, name, res)) return;
  Stored *s = find_stored(st, r, ns, name);
  if (!s) return send_not_found(res, r, name);
  auto body = parse_body(req, res);
  if (!body) return;
  commit_update(st, req, res, r, group, version, *s, std::move(*body));
}

void serve_patch(State &st, const httplib::Request &req, httplib::Response &res,
                 const Identity &id, const Resource &r, const std::string &group,
                 const std::string &version, const std::string &ns, const std::string &name) {
  if (check_forbidden(st, r, id, "patch", ns, name, res)) return;
  Stored *s = find_stored(st, r, ns, name);
  if (!s) return send_not_found(res, r, name);
  std::string type = req.get_header_value("Content-Type");
  type = trim(type.substr(0, type.find(';')));
  bool builtin = !r.custom;
  if (type != "application/merge-patch+json" && type != "application/json-patch+json" &&
      !(type == "application/strategic-merge-patch+json" && builtin)) {
    std::string accepted = builtin ? "application/json-patch+json, application/merge-patch+json, "
                                     "application/strategic-merge-patch+json"
                                   : "application/json-patch+json, application/merge-patch+json";
    send_status(res, 415, "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types "
                "include: " + accepted);
    return;
  }
  auto patch = parse_body(req, res);
  if (!patch) return;
  // --bump-before-patch: as if a controller had written the object between
  // the client's read and its patch.
  if (st.patches_seen++ < st.opt.bump_before_patch) {
    s->obj["metadata"]["resourceVersion"] = std::to_string(++st.list_rv);
    record_event(st, "MODIFIED", r, *s);
  }
  json next = s->obj;
  if (type == "application/json-patch+json") {
    if (!patch->is_array())
      return send_status(res, 400, "BadRequest", "json: cannot unmarshal object into Go value of type jsonpatch.Patch");
    try {
      next = next.patch(*patch);
    } catch (const std::exception &e) {
      std::string what = e.what();
      std::string msg = what.find("unsuccessful") != std::string::npos
                            ? "the server rejected our request due to an error in our request: test failed"
                            : "the server rejected our request due to an error in our request: " + what;
      send_status(res, 422, "Invalid", msg);
      return;
    }
  } else if (type == "application/merge-patch+json") {
    next.merge_patch(*patch);
  } else {
    strategic_merge(next, *patch);
  }
  commit_update(st, req, res, r, group, version, *s, std::move(next));
}

void serve_delete(State &st, const httplib::Request &req, httplib::Response &res,
                  const Identity &id, const Resource &r, const std::string &group,
                  const std::string &version, const std::string &ns, const std::string &name) {
  if (check_forbidden(st, r, id, "delete", ns, name, res)) return;
  Stored *s = find_stored(st, r, ns, name);
  if (!s) return send_not_found(res, r, name);
  json out = object_for_output(*s, group, version, true, r);
  if (req.get_param_value("dryRun") == "All") return send_json(res, 200, out);
  ++st.list_rv;
  record_event(st, "DELETED", r, *s);
  st.pending.erase(r.name + "|" + key_of(r, ns, name));
  st.store[r.name].erase(key_of(r, ns, name));
  send_json(res, 200, out);
}

// ------------------------------------------------------------------ controller

bool unready(const State &st, const json &pod_spec) {
  for (const char *field : {"containers", "initContainers"})
    if (pod_spec.contains(field) && pod_spec[field].is_array())
      for (const auto &c : pod_spec[field]) {
        std::string image = c.is_object() && c.contains("image") && c["image"].is_string()
                                ? c["image"].get<std::string>()
                                : "";
        for (const auto &bad : st.opt.unready_images)
          if (!bad.empty() && image.find(bad) != std::string::npos) return true;
      }
  return false;
}

void set_count(json &status, const char *field, long long n) {
  if (n == 0) status.erase(field);  // omitempty, as kube-apiserver writes it
  else status[field] = n;
}

// What the Deployment, StatefulSet and DaemonSet controllers and the kubelet
// write once a new pod template has rolled out: enough for kubectl rollout
// status and for image-migrator's waits. Images matching --unready-image
// never become ready (an image that does not pull).
void roll_out(State &st, const Resource &r, Stored &s) {
  json &obj = s.obj;
  long long gen = obj["metadata"].value("generation", 1LL);
  if (!obj.contains("status") || !obj["status"].is_object()) obj["status"] = json::object();
  json &status = obj["status"];
  if (r.name == "pods") {
    const json *spec = dig(obj, {"spec"});
    if (!spec) return;
    bool bad = unready(st, *spec);
    for (const auto &[field, sfield] : {std::pair{"containers", "containerStatuses"},
                                        std::pair{"initContainers", "initContainerStatuses"}}) {
      if (!spec->contains(field) || !status.contains(sfield) || !status[sfield].is_array()) continue;
      for (auto &cs : status[sfield])
        for (const auto &c : (*spec)[field])
          if (c.value("name", "") == cs.value("name", "") && c.contains("image")) {
            std::string image = c["image"].get<std::string>();
            if (cs.value("image", "") != image) {
              std::string id = cs.value("imageID", "");
              auto at = id.rfind('@');
              std::string repo = image.substr(0, image.find('@'));
              auto slash = repo.rfind('/'), colon = repo.rfind(':');
              if (colon != std::string::npos && (slash == std::string::npos || colon > slash))
                repo = repo.substr(0, colon);
              if (image.find('@') != std::string::npos) cs["imageID"] = image;
              else if (at != std::string::npos) cs["imageID"] = repo + id.substr(at);
              cs["image"] = image;
            }
            cs["ready"] = !bad;
            if (bad)
              cs["state"] = {{"waiting", {{"reason", "ImagePullBackOff"},
                                          {"message", "Back-off pulling image \"" + image + "\""}}}};
            else
              cs["state"] = {{"running", {{"startedAt", now_rfc3339()}}}};
          }
    }
    return;
  }
  const json *tpl = pod_template_of(obj, r);
  bool bad = tpl && tpl->contains("spec") && unready(st, (*tpl)["spec"]);
  long long replicas = 1;
  if (const json *n = dig(obj, {"spec", "replicas"}); n && n->is_number_integer())
    replicas = n->get<long long>();
  status["observedGeneration"] = gen;
  if (r.name == "deployments") {
    set_count(status, "replicas", replicas);
    set_count(status, "updatedReplicas", replicas);
    set_count(status, "readyReplicas", bad ? 0 : replicas);
    set_count(status, "availableReplicas", bad ? 0 : replicas);
    set_count(status, "unavailableReplicas", bad ? replicas : 0);
    std::string rs = s.name + "-" + fake_uid(tpl ? tpl->dump() : "").substr(0, 10);
    json progressing = {{"type", "Progressing"}, {"status", "True"}, {"lastUpdateTime", now_rfc3339()},
                        {"lastTransitionTime", now_rfc3339()}, {"reason", "NewReplicaSetAvailable"},
                        {"message", "ReplicaSet \"" + rs + "\" has successfully progressed."}};
    if (bad) {
      progressing["status"] = "False";
      progressing["reason"] = "ProgressDeadlineExceeded";
      progressing["message"] = "ReplicaSet \"" + rs + "\" has timed out progressing.";
    }
    json available = {{"type", "Available"}, {"status", bad ? "False" : "True"},
                      {"lastUpdateTime", now_rfc3339()}, {"lastTransitionTime", now_rfc3339()},
                      {"reason", bad ? "MinimumReplicasUnavailable" : "MinimumReplicasAvailable"},
                      {"message", bad ? "Deployment does not have minimum availability."
                                      : "Deployment has minimum availability."}};
    status["conditions"] = json::array({available, progressing});
  } else if (r.name == "statefulsets") {
    std::string rev = s.name + "-" + fake_uid(tpl ? tpl->dump() : "").substr(0, 10);
    set_count(status, "replicas", replicas);
    set_count(status, "readyReplicas", bad ? 0 : replicas);
    set_count(status, "availableReplicas", bad ? 0 : replicas);
    set_count(status, "updatedReplicas", replicas);
    status["updateRevision"] = rev;
    if (!bad) {
      set_count(status, "currentReplicas", replicas);
      status["currentRevision"] = rev;
    }
  } else if (r.name == "daemonsets") {
    long long desired = status.value("desiredNumberScheduled", 1LL);
    status["desiredNumberScheduled"] = desired;
    set_count(status, "currentNumberScheduled", desired);
    set_count(status, "updatedNumberScheduled", desired);
    set_count(status, "numberReady", bad ? 0 : desired);
    set_count(status, "numberAvailable", bad ? 0 : desired);
    set_count(status, "numberUnavailable", bad ? desired : 0);
  }
}

void controller_loop(State &st) {
  while (true) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::unique_lock lock(st.mu);
    auto now = std::chrono::steady_clock::now();
    for (auto it = st.pending.begin(); it != st.pending.end();) {
      if (it->second > now) {
        ++it;
        continue;
      }
      std::string res = it->first.substr(0, it->first.find('|'));
      std::string key = it->first.substr(it->first.find('|') + 1);
      it = st.pending.erase(it);
      const Resource *r = nullptr;
      for (const auto &x : resources())
        if (x.name == res) r = &x;
      auto sit = st.store.find(res);
      if (!r || sit == st.store.end() || !sit->second.count(key)) continue;
      Stored &s = sit->second[key];
      roll_out(st, *r, s);
      s.obj["metadata"]["resourceVersion"] = std::to_string(++st.list_rv);
      record_event(st, "MODIFIED", *r, s);
    }
  }
}

// ------------------------------------------------------------------ watch

void serve_watch(State &st, const httplib::Request &req, httplib::Response &res,
                 const Identity &id, const Resource &r, const std::string &group,
                 const std::string &version, const std::string &ns) {
  if (check_forbidden(st, r, id, "watch", ns, "", res)) return;
  std::string err;
  auto lsel = parse_label_selector(req.get_param_value("labelSelector"), &err);
  if (!lsel) return send_status(res, 400, "BadRequest", "unable to parse requirement: " + err);
  auto fsel = parse_field_selector(r, req.get_param_value("fieldSelector"), &err);
  if (!fsel) return send_status(res, 400, "BadRequest", err);
  long long from = 0;
  std::string rvp = req.get_param_value("resourceVersion");
  std::vector<std::string> initial;  // rv "" or "0": the current objects first, as ADDED
  auto matches = [lsel = *lsel, fsel = *fsel, ns](const json &obj, const std::string &obj_ns) {
    return (ns.empty() || obj_ns == ns) && labels_match(obj, lsel) && fields_match(obj, fsel);
  };
  if (rvp.empty() || rvp == "0") {
    auto sit = st.store.find(r.name);
    if (sit != st.store.end())
      for (const auto &[key, s] : sit->second)
        if (matches(s.obj, s.ns))
          initial.push_back(json({{"type", "ADDED"},
                                  {"object", object_for_output(s, group, version, true, r)}})
                                .dump() + "\n");
    from = st.list_rv;
  } else {
    try {
      from = std::stoll(rvp);
    } catch (const std::exception &) {
      return send_status(res, 400, "BadRequest", "invalid resourceVersion " + rvp);
    }
  }
  int timeout = 30;
  if (req.has_param("timeoutSeconds")) {
    try {
      timeout = std::max(1, std::min(60, std::stoi(req.get_param_value("timeoutSeconds"))));
    } catch (const std::exception &) {
    }
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout);
  auto last = std::make_shared<long long>(from);
  auto pending = std::make_shared<std::vector<std::string>>(std::move(initial));
  const Resource *rp = &r;
  res.status = 200;
  res.set_header("Cache-Control", "no-cache, private");
  // ";stream=watch": cpp-httplib gzips "application/json" for clients that
  // accept it (Go's do), which would hold events back until the end.
  res.set_chunked_content_provider(
      "application/json;stream=watch",
      [pending, last, deadline, rp, group, version, matches](size_t, httplib::DataSink &sink) {
        State &s = *g_state;
        while (true) {
          for (const auto &line : *pending)
            if (!sink.write(line.data(), line.size())) return false;
          pending->clear();
          if (std::chrono::steady_clock::now() >= deadline) {
            sink.done();
            return true;
          }
          {
            std::shared_lock lock(s.mu);
            for (const auto &e : s.events) {
              if (e.rv <= *last || e.resource != rp->name) continue;
              *last = e.rv;
              if (!matches(e.obj, e.ns)) continue;
              Stored tmp{e.obj, e.ns, "", ""};
              pending->push_back(json({{"type", e.type},
                                       {"object", object_for_output(tmp, group, version, true, *rp)}})
                                     .dump() + "\n");
            }
          }
          if (pending->empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
      });
}

// ------------------------------------------------------------------ rbac

// Loads Roles, ClusterRoles, RoleBindings and ClusterRoleBindings (one
// object, a List, or an array, in JSON) and resolves what each subject may
// do: User NAME, ServiceAccount NS/NAME as system:serviceaccount:NS:NAME.
bool load_rbac(State &st, const std::string &path) {
  bool ok = false;
  std::string text = read_file(path, &ok);
  if (!ok) {
    std::fprintf(stderr, "kube_api_server: cannot read --rbac %s\n", path.c_str());
    return false;
  }
  json doc;
  try {
    doc = json::parse(text);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "kube_api_server: --rbac %s: invalid JSON: %s\n", path.c_str(), e.what());
    return false;
  }
  json items = doc.is_array() ? doc : doc.contains("items") ? doc["items"] : json::array({doc});
  std::map<std::string, json> roles;  // "ClusterRole/name" or "Role/ns/name" -> rules
  for (const auto &o : items) {
    std::string kind = o.value("kind", "");
    if (kind == "ClusterRole")
      roles["ClusterRole/" + field_value(o, "metadata.name")] = o.value("rules", json::array());
    if (kind == "Role")
      roles["Role/" + field_value(o, "metadata.namespace") + "/" + field_value(o, "metadata.name")] =
          o.value("rules", json::array());
  }
  auto set_of = [](const json &rule, const char *k) {
    std::set<std::string> out;
    if (rule.contains(k) && rule[k].is_array())
      for (const auto &v : rule[k])
        if (v.is_string()) out.insert(v.get<std::string>());
    return out;
  };
  for (const auto &o : items) {
    std::string kind = o.value("kind", "");
    if (kind != "ClusterRoleBinding" && kind != "RoleBinding") continue;
    std::string bns = kind == "RoleBinding" ? field_value(o, "metadata.namespace") : "";
    std::string ref_kind = field_value(o, "roleRef.kind"), ref = field_value(o, "roleRef.name");
    std::string role_key = ref_kind == "ClusterRole" ? "ClusterRole/" + ref : "Role/" + bns + "/" + ref;
    if (!roles.count(role_key)) {
      std::fprintf(stderr, "kube_api_server: --rbac %s: %s %s refers to a missing %s\n",
                   path.c_str(), kind.c_str(), field_value(o, "metadata.name").c_str(),
                   role_key.c_str());
      continue;
    }
    if (!o.contains("subjects") || !o["subjects"].is_array()) continue;
    for (const auto &sub : o["subjects"]) {
      std::string user;
      if (sub.value("kind", "") == "User") user = sub.value("name", "");
      if (sub.value("kind", "") == "ServiceAccount")
        user = "system:serviceaccount:" + sub.value("namespace", bns) + ":" + sub.value("name", "");
      if (user.empty()) continue;
      for (const auto &rule : roles[role_key]) {
        RbacRule rr{set_of(rule, "apiGroups"), set_of(rule, "resources"), set_of(rule, "verbs"),
                    set_of(rule, "resourceNames"), bns};
        st.rbac[user].push_back(std::move(rr));
      }
    }
  }
  st.rbac_on = true;
  return true;
}

// /api/v1/... or /apis/{g}/{v}/...: `rest` is the part after the group version.
void serve_resource_path(State &st, const httplib::Request &req, httplib::Response &res,
                         const Identity &id, const std::string &group,
                         const std::string &version,
                         const std::vector<std::string> &rest) {
  auto find = [&](const std::string &name) -> const Resource * {
    for (const Resource *r : resources_in(st, group, version))
      if (r->name == name) return r;
    return nullptr;
  };
  auto not_allowed = [&] {
    send_status(res, 405, "MethodNotAllowed",
                "the server does not allow this method on the requested resource");
  };
  auto collection = [&](const Resource &r, const std::string &ns) {
    if (req.method == "GET" || req.method == "HEAD")
      return serve_list(st, req, res, id, r, group, version, ns);
    if (req.method == "POST") return serve_create(st, req, res, id, r, group, version, ns);
    not_allowed();
  };
  auto item = [&](const Resource &r, const std::string &ns, const std::string &name) {
    if (req.method == "GET" || req.method == "HEAD")
      return serve_get(st, req, res, id, r, group, version, ns, name);
    if (req.method == "PUT") return serve_update(st, req, res, id, r, group, version, ns, name);
    if (req.method == "PATCH") return serve_patch(st, req, res, id, r, group, version, ns, name);
    if (req.method == "DELETE") return serve_delete(st, req, res, id, r, group, version, ns, name);
    not_allowed();
  };
  // {res} | {res}/{name} | namespaces/{ns}/{res} | namespaces/{ns}/{res}/{name}
  if (rest.size() >= 3 && rest[0] == "namespaces") {
    const Resource *r = find(rest[2]);
    if (!r || !r->namespaced || rest.size() > 4) return send_not_found_path(res);
    if (rest.size() == 3) return collection(*r, rest[1]);
    return item(*r, rest[1], rest[3]);
  }
  if (rest.empty() || rest.size() > 2) return send_not_found_path(res);
  const Resource *r = find(rest[0]);
  if (!r) return send_not_found_path(res);
  if (rest.size() == 1) return collection(*r, "");
  if (r->namespaced) return send_not_found_path(res);
  return item(*r, "", rest[1]);
}

// ------------------------------------------------------------------ routing

thread_local std::string t_auth_desc = "none";

void handle(State &st, const httplib::Request &req, httplib::Response &res) {
  Identity id = authenticate(st, req);
  t_auth_desc = id.how;
  if (!id.ok) {
    send_status(res, 401, "Unauthorized", "Unauthorized");
    return;
  }
  bool write = req.method != "GET" && req.method != "HEAD";
  std::shared_lock<std::shared_mutex> read_lock(st.mu, std::defer_lock);
  std::unique_lock<std::shared_mutex> write_lock(st.mu, std::defer_lock);
  if (write) write_lock.lock();
  else read_lock.lock();
  std::vector<std::string> parts;
  for (auto &p : split(req.path, '/'))
    if (!p.empty()) parts.push_back(p);

  if (parts.size() == 1 && parts[0] == "version") {
    std::string v = st.opt.server_version;  // vMAJOR.MINOR.PATCH
    auto nums = split(v.substr(v[0] == 'v' ? 1 : 0), '.');
    send_json(res, 200,
              {{"major", nums.size() > 0 ? nums[0] : "1"},
               {"minor", nums.size() > 1 ? nums[1] : "32"},
               {"gitVersion", v},
               {"gitCommit", "0000000000000000000000000000000000000000"},
               {"gitTreeState", "clean"},
               {"buildDate", "2024-12-11T17:59:15Z"},
               {"goVersion", "go1.23.3"},
               {"compiler", "gc"},
               {"platform", "linux/amd64"}});
    return;
  }
  if (parts.size() == 1 && (parts[0] == "healthz" || parts[0] == "livez" ||
                            parts[0] == "readyz")) {
    res.status = 200;
    res.set_content("ok", "text/plain; charset=utf-8");
    return;
  }
  if (!parts.empty() && parts[0] == "api") {
    if (parts.size() == 1) return serve_discovery_root(st, req, res, true);
    if (parts[1] != "v1" || !version_enabled(st, "", "v1")) return send_not_found_path(res);
    if (parts.size() == 2) return send_json(res, 200, api_resource_list(st, "", "v1"));
    return serve_resource_path(st, req, res, id, "", "v1",
                               std::vector<std::string>(parts.begin() + 2, parts.end()));
  }
  if (!parts.empty() && parts[0] == "apis") {
    if (parts.size() == 1) return serve_discovery_root(st, req, res, false);
    std::vector<std::string> versions;
    for (const auto &[g, vs] : served_groups(st, false))
      if (g == parts[1]) versions = vs;
    if (versions.empty()) return send_not_found_path(res);
    if (parts.size() == 2)
      return send_json(res, 200,
                       [&] {
                         json g = api_group(parts[1], versions);
                         json out = {{"kind", "APIGroup"}, {"apiVersion", "v1"}};
                         for (auto it = g.begin(); it != g.end(); ++it)
                           out[it.key()] = it.value();
                         return out;
                       }());
    if (std::find(versions.begin(), versions.end(), parts[2]) == versions.end())
      return send_not_found_path(res);
    if (parts.size() == 3)
      return send_json(res, 200, api_resource_list(st, parts[1], parts[2]));
    return serve_resource_path(st, req, res, id, parts[1], parts[2],
                               std::vector<std::string>(parts.begin() + 3, parts.end()));
  }
  // /openapi/v2, /openapi/v3 and anything else
  send_not_found_path(res);
}

void log_request(State &st, const httplib::Request &req, const httplib::Response &res) {
  if (!st.log) return;
  std::string target = req.target.empty() ? req.path : req.target;
  std::string line = req.method + " " + target + " auth=" + t_auth_desc + " " +
                     std::to_string(res.status);
  if (req.has_header("Impersonate-User"))
    line += " as=\"" + req.get_header_value("Impersonate-User") + "\" as-groups=" +
            std::to_string(req.get_header_value_count("Impersonate-Group"));
  if (st.opt.log_accept) {
    std::string accept = req.get_header_value("Accept");
    line += " accept=\"" + accept + "\" ua=\"" + req.get_header_value("User-Agent") + "\"";
  }
  line += "\n";
  std::lock_guard<std::mutex> lock(st.log_mu);
  std::fputs(line.c_str(), st.log);
  std::fflush(st.log);
}

// ------------------------------------------------------------------ main

bool parse_args(int argc, char **argv, Options &o) {
  auto need = [&](int &i) -> std::string {
    if (i + 1 >= argc) {
      std::fprintf(stderr, "kube_api_server: %s needs a value\n", argv[i]);
      std::exit(2);
    }
    return argv[++i];
  };
  auto to_int = [](const std::string &flag, const std::string &v) -> long {
    try {
      size_t used = 0;
      long n = std::stol(v, &used);
      if (used == v.size() && n >= 0) return n;
    } catch (const std::exception &) {
    }
    std::fprintf(stderr, "kube_api_server: %s: not a non-negative integer: %s\n",
                 flag.c_str(), v.c_str());
    std::exit(2);
  };
  auto strip_group = [](std::string r) {
    auto dot = r.find('.');
    return dot == std::string::npos ? r : r.substr(0, dot);
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--host") o.host = need(i);
    else if (a == "--port") o.port = (int)to_int(a, need(i));
    else if (a == "--port-file") o.port_file = need(i);
    else if (a == "--cert") o.cert = need(i);
    else if (a == "--key") o.key = need(i);
    else if (a == "--client-ca") o.client_ca = need(i);
    else if (a == "--token") o.tokens.push_back(need(i));
    else if (a == "--token-file") o.token_files.push_back(need(i));
    else if (a == "--token-user") o.token_user = need(i);
    else if (a == "--basic") {
      std::string b = need(i);
      if (b.find(':') == std::string::npos) {
        std::fprintf(stderr, "kube_api_server: --basic wants user:pass\n");
        return false;
      }
      o.basics.push_back(b);
    } else if (a == "--objects") o.object_paths.push_back(need(i));
    else if (a == "--generate") o.generate = (int)to_int(a, need(i));
    else if (a == "--expire-continue") o.expire_continue = to_int(a, need(i));
    else if (a == "--expire-continue-inconsistent") o.expire_inconsistent = true;
    else if (a == "--forbid") o.forbid.insert(strip_group(need(i)));
    else if (a == "--forbid-cluster") o.forbid_cluster.insert(strip_group(need(i)));
    else if (a == "--disable-version") {
      std::string v = need(i);
      if (v == "core/v1") v = "v1";
      o.disabled_versions.insert(v);
    } else if (a == "--log") o.log_file = need(i);
    else if (a == "--log-accept") o.log_accept = true;
    else if (a == "--aggregated-discovery") o.aggregated_discovery = true;
    else if (a == "--list-item-kinds") o.list_item_kinds = true;
    else if (a == "--no-table") o.no_table = true;
    else if (a == "--exit-after") o.exit_after = (int)to_int(a, need(i));
    else if (a == "--server-version") o.server_version = need(i);
    else if (a == "--rbac") o.rbac_files.push_back(need(i));
    else if (a == "--resource") o.extra_resources.push_back(need(i));
    else if (a == "--rollout-delay-ms") o.rollout_delay_ms = (int)to_int(a, need(i));
    else if (a == "--unready-image") o.unready_images.push_back(need(i));
    else if (a == "--bump-before-patch") o.bump_before_patch = to_int(a, need(i));
    else if (a == "-h" || a == "--help") {
      usage(stdout);
      std::exit(0);
    } else {
      std::fprintf(stderr, "kube_api_server: unknown argument %s\n", a.c_str());
      usage(stderr);
      return false;
    }
  }
  if (o.cert.empty() != o.key.empty()) {
    std::fprintf(stderr, "kube_api_server: --cert and --key go together\n");
    return false;
  }
  if (!o.client_ca.empty() && o.cert.empty()) {
    std::fprintf(stderr, "kube_api_server: --client-ca needs --cert/--key (HTTPS)\n");
    return false;
  }
  for (const auto &spec : o.extra_resources) {
    auto p = split(spec, '/');
    if (p.size() < 4 || p.size() > 5 || p[1].empty() || p[2].empty() || p[3].empty() ||
        (p.size() == 5 && p[4] != "cluster")) {
      std::fprintf(stderr,
                   "kube_api_server: --resource wants GROUP/VERSION/PLURAL/Kind[/cluster], not %s\n",
                   spec.c_str());
      return false;
    }
    std::string singular = p[3];
    std::transform(singular.begin(), singular.end(), singular.begin(), ::tolower);
    Resource r{p[0], p[2], singular, p[3], p.size() == 4, {p[1]}, {}, {}, true};
    resources().push_back(r);
  }
  for (const auto &r : o.forbid)
    if (!std::any_of(resources().begin(), resources().end(),
                     [&](const Resource &x) { return x.name == r; }))
      std::fprintf(stderr, "kube_api_server: warning: --forbid %s: unknown resource\n",
                   r.c_str());
  return true;
}

bool write_port_file(const std::string &path, int port) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    if (!out) return false;
    out << port << "\n";
    if (!out) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

std::string ssl_errors() {
  std::string out;
  unsigned long e;
  char buf[256];
  while ((e = ERR_get_error()) != 0) {
    ERR_error_string_n(e, buf, sizeof buf);
    out += std::string(out.empty() ? "" : "; ") + buf;
  }
  return out;
}

}  // namespace

int main(int argc, char **argv) {
  // SIGTERM/SIGINT are taken by a dedicated thread (sigwait); block them before
  // any other thread exists so every thread inherits the mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  static State st;
  g_state = &st;
  if (!parse_args(argc, argv, st.opt)) return 2;
  for (const auto &p : st.opt.object_paths)
    if (!load_path(st, p)) return 1;
  for (const auto &p : st.opt.rbac_files)
    if (!load_rbac(st, p)) return 1;
  generate_deployments(st, st.opt.generate);
  synthesize_namespaces(st);
  st.list_rv = 5000 + st.opt.generate;

  if (!st.opt.log_file.empty()) {
    st.log = std::fopen(st.opt.log_file.c_str(), "a");
    if (!st.log) {
      std::fprintf(stderr, "kube_api_server: cannot open log %s: %s\n",
                   st.opt.log_file.c_str(), std::strerror(errno));
      return 1;
    }
  }

  std::unique_ptr<httplib::Server> svr;
  if (!st.opt.cert.empty()) {
    const Options &o = st.opt;
    std::string setup_error;
    auto ssl = std::make_unique<httplib::SSLServer>([&](SSL_CTX &ctx) -> bool {
      SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
      if (SSL_CTX_use_certificate_chain_file(&ctx, o.cert.c_str()) != 1 ||
          SSL_CTX_use_PrivateKey_file(&ctx, o.key.c_str(), SSL_FILETYPE_PEM) != 1 ||
          SSL_CTX_check_private_key(&ctx) != 1) {
        setup_error = "cannot load --cert/--key: " + ssl_errors();
        return false;
      }
      if (!o.client_ca.empty()) {
        if (SSL_CTX_load_verify_locations(&ctx, o.client_ca.c_str(), nullptr) != 1) {
          setup_error = "cannot load --client-ca: " + ssl_errors();
          return false;
        }
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o.client_ca.c_str());
        if (names) SSL_CTX_set_client_CA_list(&ctx, names);
        // Ask for a certificate, verify it if one is sent, but do not require
        // one (no SSL_VERIFY_FAIL_IF_NO_PEER_CERT): token/basic clients too.
        SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER, nullptr);
        // With peer verification on, OpenSSL refuses to resume a session (clients that share a
        // TLS session cache do resume) unless the server names a session id context.
        static const unsigned char sid_ctx[] = "kube_api_server";
        SSL_CTX_set_session_id_context(&ctx, sid_ctx, sizeof sid_ctx - 1);
      } else {
        SSL_CTX_set_verify(&ctx, SSL_VERIFY_NONE, nullptr);
      }
      return true;
    });
    if (!ssl->is_valid()) {
      std::fprintf(stderr, "kube_api_server: TLS setup failed: %s\n",
                   setup_error.empty() ? ssl_errors().c_str() : setup_error.c_str());
      return 1;
    }
    svr = std::move(ssl);
  } else {
    svr = std::make_unique<httplib::Server>();
  }

  svr->new_task_queue = [] { return new httplib::ThreadPool(32); };
  svr->set_keep_alive_timeout(5);
  // Handlers per method (not a pre-routing handler: that runs before the body
  // of a POST, PUT or PATCH is read).
  auto handler = [](const httplib::Request &req, httplib::Response &res) {
    t_auth_desc = "none";
    try {
      handle(*g_state, req, res);
    } catch (const std::exception &e) {
      send_status(res, 500, "InternalError",
                  std::string("Internal error occurred: ") + e.what());
    }
  };
  svr->Get(".*", handler);
  svr->Post(".*", handler);
  svr->Put(".*", handler);
  svr->Patch(".*", handler);
  svr->Delete(".*", handler);
  svr->Options(".*", handler);
  svr->set_logger([](const httplib::Request &req, const httplib::Response &res) {
    log_request(*g_state, req, res);
  });

  int port = st.opt.port;
  if (port == 0) {
    port = svr->bind_to_any_port(st.opt.host);
    if (port <= 0) {
      std::fprintf(stderr, "kube_api_server: cannot bind %s: %s\n", st.opt.host.c_str(),
                   std::strerror(errno));
      return 1;
    }
  } else if (!svr->bind_to_port(st.opt.host, port)) {
    std::fprintf(stderr, "kube_api_server: cannot bind %s:%d: %s\n", st.opt.host.c_str(),
                 port, std::strerror(errno));
    return 1;
  }
  if (!st.opt.port_file.empty() && !write_port_file(st.opt.port_file, port)) {
    std::fprintf(stderr, "kube_api_server: cannot write %s\n", st.opt.port_file.c_str());
    return 1;
  }

  std::thread([] { controller_loop(*g_state); }).detach();

  httplib::Server *raw = svr.get();
  int exit_after = st.opt.exit_after;
  std::thread([raw, sigs, exit_after] {
    if (exit_after > 0) {
      timespec ts{exit_after, 0};
      siginfo_t info;
      while (sigtimedwait(&sigs, &info, &ts) < 0 && errno == EINTR) {
      }
    } else {
      int sig = 0;
      sigwait(&sigs, &sig);
    }
    raw->stop();
  }).detach();

  bool ok = svr->listen_after_bind();
  if (st.log) std::fflush(st.log);
  std::fflush(stderr);
  // Do not wait for keep-alive connections to drain.
  _exit(ok ? 0 : 1);
}
