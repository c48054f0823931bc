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
// Test-only: loopback by default, secrets compared in plain text, no writes,
// no watch.

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
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
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
      "         [--server-version vX.Y.Z]\n",
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
};

const std::vector<Resource> &resources() {
  static const std::vector<Resource> r = {
      {"", "pods", "pod", "Pod", true, {"v1"}, {"po"}, {"all"}},
      {"", "replicationcontrollers", "replicationcontroller",
       "ReplicationController", true, {"v1"}, {"rc"}, {"all"}},
      {"", "podtemplates", "podtemplate", "PodTemplate", true, {"v1"}, {}, {}},
      {"", "namespaces", "namespace", "Namespace", false, {"v1"}, {"ns"}, {}},
      {"", "secrets", "secret", "Secret", true, {"v1"}, {}, {}},
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

struct State {
  Options opt;
  // resource name -> key ("ns/name" or "name") -> object; std::map orders keys
  // bytewise like etcd orders "/registry/<resource>/<ns>/<name>".
  std::map<std::string, std::map<std::string, Stored>> store;
  long long list_rv = 1;
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
        char cn[256] = {0};
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn,
                                  sizeof cn);
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
              {"verbs", json::array({"get", "list", "watch"})}};
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
                  {"verbs", json::array({"get", "list", "watch"})}};
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
                  r.name != "serviceaccounts";
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

bool check_forbidden(const State &st, const Resource &r, const Identity &id,
                     const std::string &verb, const std::string &ns,
                     const std::string &name, httplib::Response &res) {
  bool forbidden = st.opt.forbid.count(r.name) ||
                   (verb == "list" && ns.empty() && st.opt.forbid_cluster.count(r.name));
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

void serve_list(State &st, const httplib::Request &req, httplib::Response &res,
                const Identity &id, const Resource &r, const std::string &group,
                const std::string &version, const std::string &ns) {
  if (check_forbidden(st, r, id, "list", ns, "", res)) return;
  if (req.has_param("watch") && req.get_param_value("watch") != "false" &&
      req.get_param_value("watch") != "0") {
    send_status(res, 405, "MethodNotAllowed",
                "watch is not supported by this test API server");
    return;
  }
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
  // {res} | {res}/{name} | namespaces/{ns}/{res} | namespaces/{ns}/{res}/{name}
  if (rest.size() >= 3 && rest[0] == "namespaces") {
    const Resource *r = find(rest[2]);
    if (!r || !r->namespaced || rest.size() > 4) return send_not_found_path(res);
    if (rest.size() == 3) return serve_list(st, req, res, id, *r, group, version, rest[1]);
    return serve_get(st, req, res, id, *r, group, version, rest[1], rest[3]);
  }
  if (rest.empty() || rest.size() > 2) return send_not_found_path(res);
  const Resource *r = find(rest[0]);
  if (!r) return send_not_found_path(res);
  if (rest.size() == 1) return serve_list(st, req, res, id, *r, group, version, "");
  if (r->namespaced) return send_not_found_path(res);
  return serve_get(st, req, res, id, *r, group, version, "", rest[1]);
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
  if (req.method != "GET" && req.method != "HEAD") {
    send_status(res, 405, "MethodNotAllowed",
                "the server does not allow this method on the requested resource");
    return;
  }
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
  svr->set_pre_routing_handler([](const httplib::Request &req, httplib::Response &res) {
    t_auth_desc = "none";
    try {
      handle(*g_state, req, res);
    } catch (const std::exception &e) {
      send_status(res, 500, "InternalError",
                  std::string("Internal error occurred: ") + e.what());
    }
    return httplib::Server::HandlerResponse::Handled;
  });
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
