#include "kube/kubeconfig.hpp"

#include "http/base64.hpp"
#include "http/url.hpp"

#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace kube {

namespace {

namespace fs = std::filesystem;

http::Error invalid(const std::string& message) { return http::make_error(http::ErrorKind::invalid, message); }

/// Thrown inside this file only; converted to an Error at the module edge.
struct Bad {
  std::string message;
};

std::string scalar(const YAML::Node& node, const char* key, const std::string& where) {
  auto v = node[key];
  if (!v || v.IsNull())
    return {};
  if (!v.IsScalar())
    throw Bad{where + "." + key + " must be a string"};
  return v.Scalar();
}

bool boolean(const YAML::Node& node, const char* key, const std::string& where) {
  if (auto v = node[key]; v && v.IsScalar() && v.Tag() == "!") // quoted: a string, which kubectl refuses too
    throw Bad{where + "." + key + " must be true or false, not a quoted string"};
  // kubectl reads kubeconfigs as YAML 1.1, where these words are booleans too.
  static const std::set<std::string> yes = {"true", "True", "TRUE", "yes", "Yes", "YES", "y", "Y", "on", "On", "ON"};
  static const std::set<std::string> no = {"false", "False", "FALSE", "no", "No", "NO", "n", "N", "off", "Off", "OFF"};
  auto s = scalar(node, key, where);
  if (s.empty() || no.count(s))
    return false;
  if (yes.count(s))
    return true;
  throw Bad{where + "." + key + " must be true or false"};
}

std::string decode(const std::string& data, const std::string& where) {
  if (data.empty())
    return {};
  auto bytes = http::base64_decode(data);
  if (!bytes)
    throw Bad{where + " is not valid base64"};
  return *bytes;
}

std::string resolve(const std::string& path, const fs::path& dir) {
  if (path.empty() || fs::path(path).is_absolute())
    return path;
  return (dir / path).lexically_normal().string();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw Bad{"cannot read " + path};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Iterates a named list ("clusters", "users", "contexts") calling f(name, body, where).
template <class F> void each_named(const YAML::Node& root, const char* list, const char* body, const std::string& file, F f) {
  auto items = root[list];
  if (!items || items.IsNull())
    return;
  if (!items.IsSequence())
    throw Bad{file + ": " + list + " must be a list"};
  std::set<std::string> names; // twice in one file is an error, as in kubectl (across files the first wins)
  for (std::size_t i = 0; i < items.size(); ++i) {
    const auto& item = items[i];
    std::string where = file + ": " + list + "[" + std::to_string(i) + "]";
    if (!item.IsMap())
      throw Bad{where + " must be a map"};
    std::string name = scalar(item, "name", where);
    if (name.empty())
      throw Bad{where + " has no name"};
    if (!names.insert(name).second)
      throw Bad{file + ": " + list + ": duplicate name \"" + name + "\""};
    auto b = item[body];
    if (b && !b.IsNull() && !b.IsMap())
      throw Bad{where + "." + body + " must be a map"};
    f(name, b ? b : YAML::Node(YAML::NodeType::Map), file + ": " + std::string(body) + " \"" + name + "\"");
  }
}

void merge_text(Kubeconfig& out, const std::string& text, const std::string& file, const fs::path& dir);

void merge_file(Kubeconfig& out, const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in)
    throw Bad{file + ": cannot read file"};
  std::ostringstream ss;
  ss << in.rdbuf();
  merge_text(out, ss.str(), file, fs::absolute(fs::path(file)).parent_path());
}

void merge_text(Kubeconfig& out, const std::string& text, const std::string& file, const fs::path& dir) {
  if (text.size() > (16u << 20))
    throw Bad{file + ": larger than 16 MiB, not a kubeconfig"};
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw Bad{file + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
              ": invalid YAML: " + e.msg};
  }
  if (!root || root.IsNull())
    return; // an empty file is an empty config, as for kubectl
  if (!root.IsMap())
    throw Bad{file + ": not a kubeconfig (expected a map)"};

  each_named(root, "clusters", "cluster", file, [&](const std::string& name, const YAML::Node& c, const std::string& where) {
    if (out.clusters.count(name))
      return; // first file that sets a key wins
    Cluster cl;
    cl.server = scalar(c, "server", where);
    cl.certificate_authority = resolve(scalar(c, "certificate-authority", where), dir);
    cl.certificate_authority_data = decode(scalar(c, "certificate-authority-data", where), where + ".certificate-authority-data");
    cl.insecure_skip_tls_verify = boolean(c, "insecure-skip-tls-verify", where);
    cl.tls_server_name = scalar(c, "tls-server-name", where);
    cl.proxy_url = scalar(c, "proxy-url", where);
    out.clusters.emplace(name, std::move(cl));
  });
  each_named(root, "users", "user", file, [&](const std::string& name, const YAML::Node& u, const std::string& where) {
    if (out.users.count(name))
      return;
    User us;
    us.client_certificate = resolve(scalar(u, "client-certificate", where), dir);
    us.client_key = resolve(scalar(u, "client-key", where), dir);
    us.client_certificate_data = decode(scalar(u, "client-certificate-data", where), where + ".client-certificate-data");
    us.client_key_data = decode(scalar(u, "client-key-data", where), where + ".client-key-data");
    us.token = scalar(u, "token", where);
    us.token_file = resolve(scalar(u, "tokenFile", where), dir);
    us.username = scalar(u, "username", where);
    us.password = scalar(u, "password", where);
    us.impersonate.user = scalar(u, "as", where);
    us.impersonate.uid = scalar(u, "as-uid", where);
    if (auto g = u["as-groups"]; g && !g.IsNull()) {
      if (!g.IsSequence())
        throw Bad{where + ".as-groups must be a list"};
      for (const auto& item : g)
        us.impersonate.groups.push_back(item.as<std::string>());
    }
    if (auto x = u["as-user-extra"]; x && !x.IsNull()) {
      if (!x.IsMap())
        throw Bad{where + ".as-user-extra must be a map of lists"};
      for (const auto& kv : x) {
        if (!kv.second.IsSequence())
          throw Bad{where + ".as-user-extra." + kv.first.as<std::string>() + " must be a list"};
        auto& values = us.impersonate.extra[kv.first.as<std::string>()];
        for (const auto& v : kv.second)
          values.push_back(v.as<std::string>());
      }
    }
    if (auto e = u["exec"]; e && !e.IsNull()) {
      if (!e.IsMap())
        throw Bad{where + ".exec must be a map"};
      ExecConfig ex;
      ex.api_version = scalar(e, "apiVersion", where + ".exec");
      ex.command = scalar(e, "command", where + ".exec");
      if (ex.command.find('/') != std::string::npos)
        ex.command = resolve(ex.command, dir);
      if (auto args = e["args"]; args && args.IsSequence())
        for (const auto& a : args)
          ex.args.push_back(a.as<std::string>());
      if (auto env = e["env"]; env && env.IsSequence())
        for (const auto& kv : env) {
          std::string n = scalar(kv, "name", where + ".exec.env");
          if (n.empty())
            throw Bad{where + ".exec.env: an entry has no name"};
          ex.env.emplace_back(n, scalar(kv, "value", where + ".exec.env"));
        }
      ex.provide_cluster_info = boolean(e, "provideClusterInfo", where + ".exec");
      ex.install_hint = scalar(e, "installHint", where + ".exec");
      us.exec = std::move(ex);
    }
    if (auto ap = u["auth-provider"]; ap && ap.IsMap()) {
      us.auth_provider = scalar(ap, "name", where + ".auth-provider");
      if (auto cfg = ap["config"]; cfg && cfg.IsMap())
        for (const auto& kv : cfg)
          if (kv.second.IsScalar())
            us.auth_provider_config[kv.first.as<std::string>()] = kv.second.Scalar();
    }
    out.users.emplace(name, std::move(us));
  });
  each_named(root, "contexts", "context", file, [&](const std::string& name, const YAML::Node& c, const std::string& where) {
    if (out.contexts.count(name))
      return;
    Context ct;
    ct.cluster = scalar(c, "cluster", where);
    ct.user = scalar(c, "user", where);
    ct.ns = scalar(c, "namespace", where);
    out.contexts.emplace(name, std::move(ct));
  });
  if (out.current_context.empty())
    out.current_context = scalar(root, "current-context", file);
}

bool readable(const std::string& path) { return std::ifstream(path).good(); }

std::string sha256_hex(const std::string& bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

} // namespace

Result<Kubeconfig> load_kubeconfig(const std::vector<std::string>& files, bool all_must_exist) {
  Kubeconfig config;
  try {
    for (const auto& f : files) {
      if (f.empty())
        continue;
      if (!fs::exists(f)) {
        if (all_must_exist)
          return invalid(f + ": kubeconfig file does not exist");
        continue;
      }
      merge_file(config, f);
    }
  } catch (const Bad& b) {
    return invalid(b.message);
  } catch (const YAML::Exception& e) {
    return invalid("reading kubeconfig: " + e.msg);
  }
  return config;
}

Result<Kubeconfig> parse_kubeconfig(const std::string& text, const std::string& name, const std::string& dir) {
  Kubeconfig config;
  try {
    merge_text(config, text, name, fs::path(dir));
  } catch (const Bad& b) {
    return invalid(b.message);
  } catch (const YAML::Exception& e) {
    return invalid(name + ": " + e.msg);
  }
  return config;
}

LoadOptions options_from_environment(const util::EnvLookup& env) {
  LoadOptions o;
  auto get = [&env](const char* name) { return util::env_or_empty(env, name); };
  o.kubeconfig_env = get("KUBECONFIG");
  o.home = get("HOME");
  o.service_host = get("KUBERNETES_SERVICE_HOST");
  o.service_port = get("KUBERNETES_SERVICE_PORT");
  if (auto dir = get("IMAGE_MIGRATOR_SERVICEACCOUNT_DIR"); !dir.empty())
    o.in_cluster_dir = dir;
  return o;
}

Result<RestConfig> rest_config_for(const Kubeconfig& config, const std::string& context_name, const std::string& source) {
  std::string name = context_name.empty() ? config.current_context : context_name;
  if (name.empty())
    return invalid(source + ": no current-context is set; pick one with --context");
  auto ctx = config.contexts.find(name);
  if (ctx == config.contexts.end())
    return invalid(source + ": context \"" + name + "\" does not exist");
  auto cl = config.clusters.find(ctx->second.cluster);
  if (cl == config.clusters.end())
    return invalid(source + ": context \"" + name + "\" refers to cluster \"" + ctx->second.cluster + "\", which is not defined");
  const Cluster& cluster = cl->second;
  if (cluster.server.empty())
    return invalid(source + ": cluster \"" + ctx->second.cluster + "\" has no server");

  RestConfig rc;
  rc.source = "context \"" + name + "\" of " + source;
  rc.server = cluster.server;
  while (!rc.server.empty() && rc.server.back() == '/')
    rc.server.pop_back();
  if (rc.server.rfind("https://", 0) != 0 && rc.server.rfind("http://", 0) != 0)
    rc.server = "https://" + rc.server;
  rc.ns = ctx->second.ns.empty() ? "default" : ctx->second.ns;
  rc.proxy = cluster.proxy_url;
  rc.tls.server_name = cluster.tls_server_name;

  std::string cluster_where = source + ": cluster \"" + ctx->second.cluster + "\"";
  if (cluster.insecure_skip_tls_verify && (!cluster.certificate_authority.empty() || !cluster.certificate_authority_data.empty()))
    return invalid(cluster_where + ": specifying a root certificates file with the insecure flag is not allowed");
  rc.tls.verify = !cluster.insecure_skip_tls_verify;
  try {
    if (!cluster.certificate_authority_data.empty())
      rc.tls.ca_pem = cluster.certificate_authority_data;
    else if (!cluster.certificate_authority.empty())
      rc.tls.ca_pem = read_file(cluster.certificate_authority);
  } catch (const Bad& b) {
    return invalid(cluster_where + ": certificate-authority: " + b.message);
  }

  if (ctx->second.user.empty())
    return rc; // anonymous
  auto us = config.users.find(ctx->second.user);
  if (us == config.users.end())
    return invalid(source + ": context \"" + name + "\" refers to user \"" + ctx->second.user + "\", which is not defined");
  const User& u = us->second;
  std::string where = source + ": user \"" + ctx->second.user + "\"";

  if (u.auth_provider == "gcp")
    return invalid(where + ": the gcp auth plugin has been removed; use the \"gke-gcloud-auth-plugin\" exec credential plugin instead");
  if (u.auth_provider == "azure")
    return invalid(where + ": the azure auth plugin has been removed; use the \"kubelogin\" exec credential plugin instead");
  if (!u.auth_provider.empty() && u.auth_provider != "oidc")
    return invalid(where + ": auth-provider \"" + u.auth_provider + "\" is not supported; use an exec credential plugin");

  std::vector<std::string> methods;
  if (!u.token.empty() || !u.token_file.empty())
    methods.push_back("token");
  if (!u.username.empty() || !u.password.empty())
    methods.push_back("basicAuth");
  if (methods.size() > 1)
    return invalid(where + ": more than one authentication method found (token and basicAuth); only one is allowed");
  bool has_cert = !u.client_certificate.empty() || !u.client_certificate_data.empty();
  bool has_key = !u.client_key.empty() || !u.client_key_data.empty();
  if (has_cert && !has_key)
    return invalid(where + ": client-key-data or client-key must be specified to use the clientCert authentication method");
  if (has_key && !has_cert)
    return invalid(where + ": client-certificate-data or client-certificate must be specified to use the clientCert authentication method");
  if (u.exec) {
    if (!u.auth_provider.empty())
      return invalid(where + ": authProvider cannot be provided in combination with an exec plugin");
    if (u.exec->command.empty())
      return invalid(where + ": command must be specified to use the exec authentication plugin");
    if (u.exec->api_version == "client.authentication.k8s.io/v1alpha1")
      return invalid(where + ": exec plugin apiVersion client.authentication.k8s.io/v1alpha1 is no longer supported; "
                             "use client.authentication.k8s.io/v1 or v1beta1");
    if (u.exec->api_version != "client.authentication.k8s.io/v1" && u.exec->api_version != "client.authentication.k8s.io/v1beta1")
      return invalid(where + ": exec plugin apiVersion \"" + u.exec->api_version +
                     "\" is not supported (want client.authentication.k8s.io/v1 or v1beta1)");
  }
  // With both token and tokenFile, an unreadable tokenFile is no error: the token stands in, as in kubectl.
  for (const auto* path : {&u.client_certificate, &u.client_key, &u.token_file})
    if (!path->empty() && !readable(*path) && !(path == &u.token_file && !u.token.empty()))
      return invalid(where + ": cannot read " + *path);

  rc.tls.cert_pem = u.client_certificate_data;
  rc.tls.key_pem = u.client_key_data;
  if (rc.tls.cert_pem.empty())
    rc.tls.cert_file = u.client_certificate;
  if (rc.tls.key_pem.empty())
    rc.tls.key_file = u.client_key;
  // kubectl's order: the tokenFile when it can be read (at each request: it rotates), else the token.
  rc.token = u.token;
  rc.token_file = u.token_file;
  rc.username = u.username;
  rc.password = u.password;
  rc.exec = u.exec;
  if (u.impersonate.user.empty() && !u.impersonate.empty())
    return invalid(where + ": as-uid, as-groups or as-user-extra need \"as\" (the user to impersonate)");
  rc.impersonate = u.impersonate;
  if (u.auth_provider == "oidc") {
    auto it = u.auth_provider_config.find("id-token");
    if (it == u.auth_provider_config.end() || it->second.empty())
      return invalid(where + ": the oidc auth-provider has no id-token (refresh it with your OIDC login tool)");
    rc.token = it->second;
  }
  return rc;
}

nlohmann::json describe(const RestConfig& rc) {
  std::string auth = "none";
  if (rc.exec)
    auth = "exec";
  else if (!rc.token_file.empty())
    auth = "tokenFile";
  else if (!rc.token.empty())
    auth = "token";
  else if (!rc.username.empty())
    auth = "basic";
  else if (!rc.tls.cert_pem.empty() || !rc.tls.cert_file.empty())
    auth = "clientCertificate";
  auto file_or_data = [](const std::string& data, const std::string& file) -> nlohmann::json {
    if (!data.empty())
      return sha256_hex(data);
    if (!file.empty() && readable(file))
      return sha256_hex(read_file(file));
    return nullptr;
  };
  nlohmann::json j = {{"source", rc.source},
                      {"server", rc.server},
                      {"namespace", rc.ns},
                      {"auth", auth},
                      {"insecureSkipTLSVerify", !rc.tls.verify},
                      {"tlsServerName", rc.tls.server_name},
                      {"proxyURL", http::redact_userinfo(rc.proxy)},
                      {"caSha256", file_or_data(rc.tls.ca_pem, "")},
                      {"clientCertificateSha256", file_or_data(rc.tls.cert_pem, rc.tls.cert_file)},
                      {"clientKeySha256", file_or_data(rc.tls.key_pem, rc.tls.key_file)},
                      {"tokenSha256", rc.token.empty() ? nlohmann::json(nullptr) : nlohmann::json(sha256_hex(rc.token))},
                      {"tokenFile", rc.token_file},
                      {"username", rc.username},
                      {"impersonate", rc.impersonate.user},
                      {"impersonateGroups", rc.impersonate.groups}};
  if (rc.exec)
    j["exec"] = {{"command", rc.exec->command}, {"args", rc.exec->args}, {"apiVersion", rc.exec->api_version}};
  return j;
}

Result<RestConfig> rest_config(const LoadOptions& o) {
  std::vector<std::string> files;
  std::string source;
  bool explicit_file = !o.kubeconfig.empty();
  if (explicit_file) {
    files.push_back(o.kubeconfig);
    source = o.kubeconfig;
  } else if (!o.kubeconfig_env.empty()) {
    std::stringstream ss(o.kubeconfig_env);
    std::string part;
    while (std::getline(ss, part, ':'))
      if (!part.empty() && std::find(files.begin(), files.end(), part) == files.end())
        files.push_back(part);
    source = "KUBECONFIG=" + o.kubeconfig_env;
  } else if (!o.home.empty() && fs::exists(fs::path(o.home) / ".kube" / "config")) {
    files.push_back((fs::path(o.home) / ".kube" / "config").string());
    source = files.back();
  }
  if (!files.empty()) {
    auto config = load_kubeconfig(files, explicit_file);
    if (!config)
      return config.error();
    if (!config->contexts.empty() || !o.context.empty() || explicit_file)
      return rest_config_for(*config, o.context, source);
  }
  // In-cluster: the pod's service account.
  if (o.service_host.empty() || o.service_port.empty())
    return invalid("no kubeconfig found (tried " + (source.empty() ? std::string("~/.kube/config") : source) +
                   ") and not running in a cluster (KUBERNETES_SERVICE_HOST/PORT unset); use -k/--kubeconfig");
  RestConfig rc;
  std::string host = o.service_host.find(':') != std::string::npos ? "[" + o.service_host + "]" : o.service_host;
  rc.server = "https://" + host + ":" + o.service_port;
  rc.source = "in-cluster service account (" + o.in_cluster_dir + ")";
  fs::path dir(o.in_cluster_dir);
  rc.token_file = (dir / "token").string();
  if (!readable(rc.token_file))
    return invalid("in-cluster: cannot read the service-account token " + rc.token_file);
  try {
    rc.tls.ca_pem = read_file((dir / "ca.crt").string());
  } catch (const Bad& b) {
    return invalid("in-cluster: " + b.message);
  }
  std::ifstream ns((dir / "namespace").string());
  std::getline(ns, rc.ns);
  if (rc.ns.empty())
    rc.ns = "default";
  return rc;
}

} // namespace kube
