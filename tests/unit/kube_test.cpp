#include "kube/client.hpp"
#include "kube/discovery.hpp"
#include "kube/kubeconfig.hpp"
#include "kube/workloads.hpp"
#include "migrate/config.hpp"
#include "migrate/discover.hpp"
#include "migrate/rewrite.hpp"
#include "temp_dir.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <set>

namespace fs = std::filesystem;

namespace {

const std::string fixtures = IM_FIXTURES;

using test::TempDir;

nlohmann::json load(const std::string& rel) {
  std::ifstream in(fixtures + "/k8s-objects/" + rel);
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

} // namespace

TEST_CASE("kube::rest_config_for with the fixture kubeconfigs") {
  auto cfg = kube::load_kubeconfig({fixtures + "/kubeconfigs/userauth.kubeconfig"}, true);
  REQUIRE(cfg);
  SUBCASE("token user, current context") {
    auto rc = kube::rest_config_for(*cfg, "", "userauth.kubeconfig");
    REQUIRE(rc);
    CHECK(rc->server == "https://localhost:8443");
    CHECK(rc->token == "0123456789ABCDEF0123456789ABCDEF");
    CHECK_FALSE(rc->tls.verify);
    CHECK(rc->ns == "default");
  }
  SUBCASE("username and password") {
    auto rc = kube::rest_config_for(*cfg, "localhost/system:admin:userpass", "userauth.kubeconfig");
    REQUIRE(rc);
    CHECK(rc->username == "admin");
    CHECK(rc->password == "pAssw0rd123");
  }
  SUBCASE("the removed gcp auth-provider gives the message users know") {
    auto rc = kube::rest_config_for(*cfg, "localhost/system:admin:gcptoken", "userauth.kubeconfig");
    REQUIRE_FALSE(rc);
    CHECK(rc.error().message.find("gcp auth plugin has been removed") != std::string::npos);
    CHECK(rc.error().message.find("gke-gcloud-auth-plugin") != std::string::npos);
    CHECK(rc.error().message.find("ya29") == std::string::npos);
  }
  SUBCASE("unknown context") {
    auto rc = kube::rest_config_for(*cfg, "nope", "userauth.kubeconfig");
    REQUIRE_FALSE(rc);
    CHECK(rc.error().message == "userauth.kubeconfig: context \"nope\" does not exist");
  }
  SUBCASE("exec plugin") {
    auto exec_cfg = kube::load_kubeconfig({fixtures + "/kubeconfigs/execauth.kubeconfig"}, true);
    REQUIRE(exec_cfg);
    auto rc = kube::rest_config_for(*exec_cfg, "", "execauth.kubeconfig");
    REQUIRE(rc);
    REQUIRE(rc->exec);
    CHECK(rc->exec->command == "example-exec-plugin"); // no '/': looked up on PATH, not resolved
    CHECK(rc->exec->args == std::vector<std::string>{"arg1", "arg2"});
    CHECK(rc->exec->env == std::vector<std::pair<std::string, std::string>>{{"FOO", "bar"}});
    CHECK(rc->exec->api_version == "client.authentication.k8s.io/v1beta1");
  }
}

TEST_CASE("kube::load_kubeconfig merges like kubectl") {
  TempDir d;
  auto a = d.write("a/config", R"(apiVersion: v1
kind: Config
clusters:
- name: c1
  cluster: {server: "https://first:6443", certificate-authority: ca.pem}
users:
- name: u1
  user: {client-certificate: certs/u.crt, client-key: /abs/u.key, tokenFile: tok}
contexts:
- name: ctx
  context: {cluster: c1, user: u1, namespace: ns-a}
)");
  auto b = d.write("b/config", R"(apiVersion: v1
kind: Config
current-context: ctx
clusters:
- name: c1
  cluster: {server: "https://second:6443"}
- name: c2
  cluster: {server: "https://only-b:6443"}
users:
- name: u2
  user:
    exec: {apiVersion: client.authentication.k8s.io/v1, command: ./bin/plugin}
contexts:
- name: ctx
  context: {cluster: c2, user: u2}
)");
  auto cfg = kube::load_kubeconfig({a, b}, false);
  REQUIRE(cfg);
  CHECK(cfg->current_context == "ctx");                        // first non-empty current-context
  CHECK(cfg->clusters.at("c1").server == "https://first:6443"); // first file wins per key
  CHECK(cfg->clusters.at("c2").server == "https://only-b:6443");
  CHECK(cfg->contexts.at("ctx").cluster == "c1");
  CHECK(cfg->clusters.at("c1").certificate_authority == (d.path() / "a/ca.pem").string());
  CHECK(cfg->users.at("u1").client_certificate == (d.path() / "a/certs/u.crt").string());
  CHECK(cfg->users.at("u1").client_key == "/abs/u.key");
  CHECK(cfg->users.at("u1").token_file == (d.path() / "a/tok").string());
  CHECK(cfg->users.at("u2").exec->command == (d.path() / "b/bin/plugin").string());
  CHECK_FALSE(kube::load_kubeconfig({(d.path() / "missing").string()}, true));
  CHECK(kube::load_kubeconfig({(d.path() / "missing").string(), a}, false));
}

TEST_CASE("kube::rest_config_for validation") {
  TempDir d;
  auto check = [&](const std::string& user_yaml, const std::string& expected) {
    auto f = d.write("v.kubeconfig", "clusters:\n- name: c\n  cluster: {server: 'https://x:1'}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\nusers:\n- name: u\n  user: " + user_yaml + "\n");
    auto cfg = kube::load_kubeconfig({f}, true);
    REQUIRE(cfg);
    auto rc = kube::rest_config_for(*cfg, "", "v.kubeconfig");
    CAPTURE(user_yaml);
    REQUIRE_FALSE(rc);
    CHECK(rc.error().message.find(expected) != std::string::npos);
    CHECK(rc.error().message.find('\n') == std::string::npos);
  };
  check("{token: t, username: a, password: b}", "more than one authentication method");
  check("{client-certificate-data: Zm9v}", "client-key-data or client-key must be specified");
  check("{exec: {apiVersion: client.authentication.k8s.io/v1alpha1, command: x}}", "v1alpha1 is no longer supported");
  check("{exec: {apiVersion: client.authentication.k8s.io/v1}}", "command must be specified");
  check("{auth-provider: {name: azure}}", "azure auth plugin has been removed");
  check("{tokenFile: /nonexistent/token}", "cannot read /nonexistent/token");
  auto bad = d.write("bad.kubeconfig", "clusters: [\n");
  auto r = kube::load_kubeconfig({bad}, true);
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find(bad + ":") == 0);
}

TEST_CASE("kube::rest_config in-cluster") {
  TempDir d;
  d.write("sa/token", "sa-token\n");
  d.write("sa/ca.crt", "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n");
  d.write("sa/namespace", "migration");
  kube::LoadOptions o;
  o.home = d.path().string(); // no ~/.kube/config there
  o.in_cluster_dir = (d.path() / "sa").string();
  o.service_host = "10.96.0.1";
  o.service_port = "443";
  auto rc = kube::rest_config(o);
  REQUIRE(rc);
  CHECK(rc->server == "https://10.96.0.1:443");
  CHECK(rc->token_file == (d.path() / "sa/token").string());
  CHECK(rc->ns == "migration");
  CHECK(rc->tls.ca_pem.find("BEGIN CERTIFICATE") != std::string::npos);
  o.service_host = "fd00::1";
  CHECK(kube::rest_config(o)->server == "https://[fd00::1]:443");
  o.service_host.clear();
  auto none = kube::rest_config(o);
  REQUIRE_FALSE(none);
  CHECK(none.error().message.find("not running in a cluster") != std::string::npos);
}

TEST_CASE("kube::run_exec_plugin") {
  TempDir d;
  auto script = d.write("plugin.sh", R"(#!/bin/sh
case "$KUBERNETES_EXEC_INFO" in *'"interactive":false'*) ;; *) echo "no exec info" >&2; exit 3;; esac
case "$KUBERNETES_EXEC_INFO" in *'"server":"https://api:6443"'*) ;; *) echo "no cluster info" >&2; exit 4;; esac
[ "$1" = "--flag" ] || { echo "args not passed" >&2; exit 5; }
echo "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"tok-$FOO\",\"expirationTimestamp\":\"2030-01-02T03:04:05Z\"}}"
)", fs::perms::owner_all);
  kube::ExecConfig ex;
  ex.api_version = "client.authentication.k8s.io/v1";
  ex.command = script;
  ex.args = {"--flag"};
  ex.env = {{"FOO", "bar"}};
  ex.provide_cluster_info = true;
  kube::RestConfig rc;
  rc.server = "https://api:6443";
  auto cred = kube::run_exec_plugin(ex, rc);
  REQUIRE(cred);
  CHECK(cred->token == "tok-bar");
  REQUIRE(cred->expires);
  CHECK(std::chrono::system_clock::to_time_t(*cred->expires) == 1893553445); // 2030-01-02T03:04:05Z

  ex.provide_cluster_info = false;
  auto failed = kube::run_exec_plugin(ex, rc);
  REQUIRE_FALSE(failed);
  CHECK(failed.error().message.find("exited with 4: no cluster info") != std::string::npos);

  ex.command = (d.path() / "does-not-exist").string();
  ex.install_hint = "install it from your cloud provider";
  auto missing = kube::run_exec_plugin(ex, rc);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message.find("install it from your cloud provider") != std::string::npos);

  ex.command = script;
  ex.api_version = "client.authentication.k8s.io/v1beta1";
  ex.provide_cluster_info = true;
  auto mismatch = kube::run_exec_plugin(ex, rc);
  REQUIRE_FALSE(mismatch);
  CHECK(mismatch.error().message.find("expected \"client.authentication.k8s.io/v1beta1\"") != std::string::npos);
}

TEST_CASE("kube::collect_images from real serialized objects") {
  struct Row {
    const char* file;
    const char* kind;
    std::size_t uses;
    std::size_t running;
  };
  const Row rows[] = {
      {"core.v1.Pod.json", "Pod", 4, 3},
      {"core.v1.PodTemplate.json", "PodTemplate", 4, 0},
      {"core.v1.ReplicationController.json", "ReplicationController", 4, 0},
      {"apps.v1.Deployment.json", "Deployment", 4, 0},
      {"apps.v1.StatefulSet.json", "StatefulSet", 4, 0},
      {"apps.v1.DaemonSet.json", "DaemonSet", 4, 0},
      {"apps.v1.ReplicaSet.json", "ReplicaSet", 4, 0},
      {"batch.v1.Job.json", "Job", 4, 0},
      {"batch.v1.CronJob.json", "CronJob", 4, 0},
      {"real/po_init.json", "Pod", 2, 2},
      {"real/po_sidecar.json", "Pod", 3, 3},
      {"real/cj.json", "CronJob", 1, 0},
  };
  for (const auto& row : rows) {
    CAPTURE(row.file);
    kube::Inventory inv;
    kube::collect_images(load(row.file), row.kind, inv);
    CHECK(inv.uses.size() == row.uses);
    CHECK(inv.running.size() == row.running);
  }
  kube::Inventory pod;
  kube::collect_images(load("core.v1.Pod.json"), "Pod", pod);
  std::set<std::string> types;
  for (const auto& u : pod.uses) {
    types.insert(u.container_type);
    CHECK(u.pull_secrets == std::vector<std::string>{"nameValue"});
  }
  CHECK(types == std::set<std::string>{"container", "initContainer", "ephemeralContainer", "imageVolume"});
  kube::Inventory init;
  kube::collect_images(load("real/po_init.json"), "Pod", init);
  CHECK(init.running[0].digest == "sha256:482ead44b2203fa32b3390abdaf97cbdc8ad15c07fb03a3e68d7c35a19ad7595");
}

TEST_CASE("kube::valid_namespace_name") {
  for (const char* good : {"default", "kube-system", "a", "team-1", "0x"})
    CHECK(kube::valid_namespace_name(good));
  for (const char* bad : {"", "Default", "-a", "a-", "a_b", "a.b", "a/b", "../etc", "ns%2F..",
                          "a123456789012345678901234567890123456789012345678901234567890123"})
    CHECK_FALSE(kube::valid_namespace_name(bad));
}

TEST_CASE("kube::digest_from_image_id") {
  const std::string d = "sha256:482ead44b2203fa32b3390abdaf97cbdc8ad15c07fb03a3e68d7c35a19ad7595";
  CHECK(kube::digest_from_image_id("docker-pullable://nginx@" + d) == d);
  CHECK(kube::digest_from_image_id("docker.io/istio/base@" + d) == d);
  CHECK(kube::digest_from_image_id(d).empty());             // an image (config) ID, not a manifest digest
  CHECK(kube::digest_from_image_id("docker://" + d).empty());
  CHECK(kube::digest_from_image_id("").empty());
}

TEST_CASE("migrate::plan_images") {
  kube::Inventory inv;
  auto use = [&](const std::string& image) {
    kube::ImageUse u;
    u.image = image;
    u.kind = "Deployment";
    u.ns = "ns";
    u.name = "n";
    inv.uses.push_back(u);
  };
  const std::string dg = "sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582";
  use("nginx");
  use("docker.io/library/nginx:latest"); // same key as "nginx"
  use("quay.io/org/team/tool:1.2@" + dg);
  use("gcr.io/distroless/static@" + dg);
  use("Bad/Image");
  SUBCASE("flatten all (the documented default)") {
    auto plan = migrate::plan_images(inv, "swr.example.com/org", migrate::parse_flatten("all"));
    CHECK(plan.images == std::map<std::string, std::string>{
                             {"docker.io/library/nginx:latest", "swr.example.com/org/nginx:latest"},
                             {"quay.io/org/team/tool:1.2@" + dg, "swr.example.com/org/tool:1.2@" + dg},
                             {"gcr.io/distroless/static@" + dg, "swr.example.com/org/static@" + dg}});
    REQUIRE(plan.invalid.size() == 1);
    CHECK(plan.invalid[0].find("Bad/Image") == 0);
  }
  SUBCASE("flatten none and levels") {
    auto none = migrate::plan_images(inv, "r.io/o", migrate::parse_flatten("none"));
    CHECK(none.images.at("quay.io/org/team/tool:1.2@" + dg) == "r.io/o/org/team/tool:1.2@" + dg);
    auto one = migrate::plan_images(inv, "r.io/o", migrate::parse_flatten("1"));
    CHECK(one.images.at("quay.io/org/team/tool:1.2@" + dg) == "r.io/o/team/tool:1.2@" + dg);
    CHECK_THROWS_AS(migrate::parse_flatten("most"), migrate::ConfigError);
  }
  SUBCASE("two sources on one target is an error naming both") {
    use("quay.io/other/nginx:latest");
    try {
      migrate::plan_images(inv, "r.io/o", migrate::parse_flatten("all"));
      FAIL("expected a conflict");
    } catch (const migrate::ConfigError& e) {
      std::string m = e.what();
      CHECK(m.find("docker.io/library/nginx:latest") != std::string::npos);
      CHECK(m.find("quay.io/other/nginx:latest") != std::string::npos);
    }
  }
}

TEST_CASE("migrate::audit_report") {
  kube::Inventory inv;
  auto pod = [&](const std::string& name, const std::string& digest) {
    kube::ImageUse u{"nginx:1.25", "Pod", "web", name, "c", "container", {"regcred"}};
    inv.uses.push_back(u);
    inv.running.push_back({"web", name, "c", "nginx:1.25", "docker.io/library/nginx:1.25", "docker-pullable://nginx@" + digest, digest});
  };
  pod("a", "sha256:" + std::string(64, '1'));
  pod("b", "sha256:" + std::string(64, '2'));
  inv.uses.push_back({"redis", "Deployment", "db", "r", "redis", "container", {}});
  auto plan = migrate::plan_images(inv, "r.io/o", migrate::parse_flatten("all"));
  auto report = migrate::audit_report(inv, plan, {{"docker.io/library/redis:latest", true}});
  REQUIRE(report["images"].size() == 2);
  const auto& nginx = report["images"][0];
  CHECK(nginx["image"] == "docker.io/library/nginx:1.25");
  CHECK(nginx["flags"]["drift"] == true);
  CHECK(nginx["flags"]["mutableTag"] == false);
  CHECK(nginx["flags"]["pullSecrets"] == nlohmann::json{"web/regcred"});
  CHECK(nginx["runningDigests"].size() == 2);
  CHECK(nginx["flags"]["inTarget"].is_null());
  const auto& redis = report["images"][1];
  CHECK(redis["flags"]["mutableTag"] == true);
  CHECK(redis["flags"]["inTarget"] == true);
  CHECK(report["totals"]["docker.io"]["images"] == 2);
  auto table = migrate::audit_table(report);
  CHECK(table.find("docker.io/library/nginx:1.25 | 2 | 2 | - | - | yes | 1 | ?") != std::string::npos);
}

TEST_CASE("migrate::plan_rewrite: kustomize keeps each image's tag; Jobs and PodTemplates are edited by hand") {
  kube::Inventory inv;
  auto use = [&](std::string image, std::string kind, std::string name) {
    kube::ImageUse u;
    u.image = std::move(image);
    u.kind = std::move(kind);
    u.ns = "shop";
    u.name = std::move(name);
    u.container = "c";
    u.container_type = "container";
    inv.uses.push_back(u);
  };
  use("nginx:1.25", "Deployment", "a");
  use("nginx:1.26", "Deployment", "b");
  use("busybox:1", "Job", "once");
  use("busybox:1", "PodTemplate", "tpl");
  use("redis:7", "Deployment", "cache");
  std::map<std::string, std::string> targets = {{"docker.io/library/nginx:1.25", "swr.example.com/org/nginx:1.25"},
                                                {"docker.io/library/nginx:1.26", "swr.example.com/org/nginx:1.26"},
                                                {"docker.io/library/busybox:1", "swr.example.com/org/busybox:1"},
                                                {"docker.io/library/redis:7", "swr.example.com/org/redis:7-migrated"}};
  auto rw = migrate::plan_rewrite(inv, targets);
  // One entry for nginx, without newTag: kustomize leaves 1.25 and 1.26 as they are.
  CHECK(rw.kustomize.find("- name: nginx\n  newName: swr.example.com/org/nginx\n") != std::string::npos);
  CHECK(rw.kustomize.find("newTag: \"1.25\"") == std::string::npos);
  // A tag that does change is said.
  CHECK(rw.kustomize.find("- name: redis\n  newName: swr.example.com/org/redis\n  newTag: \"7-migrated\"\n") != std::string::npos);
  CHECK(rw.kubectl.find("set image deployment/a c=swr.example.com/org/nginx:1.25") != std::string::npos);
  CHECK(rw.kubectl.find("set image job/once") == std::string::npos);
  CHECK(rw.kubectl.find("set image podtemplate/tpl") == std::string::npos);
  CHECK(rw.kubectl.find("a Job's pod template is immutable") != std::string::npos);
  CHECK(rw.kubectl.find("kubectl set image cannot change a PodTemplate") != std::string::npos);
  CHECK(rw.changes == 3);
}

TEST_CASE("migrate::plan_rewrite: two targets for one name are flagged, not applied to both") {
  kube::Inventory inv;
  for (const char* image : {"nginx:1.25", "nginx:1.26"}) {
    kube::ImageUse u;
    u.image = image;
    u.kind = "Deployment";
    u.ns = "shop";
    u.name = image;
    u.container = "c";
    u.container_type = "container";
    inv.uses.push_back(u);
  }
  auto rw = migrate::plan_rewrite(inv, {{"docker.io/library/nginx:1.25", "a.io/x/nginx:stable"},
                                        {"docker.io/library/nginx:1.26", "a.io/x/nginx:next"}});
  CHECK(rw.kustomize.find("# nginx has 2 different targets") != std::string::npos);
  CHECK(rw.kustomize.find("\n- name: nginx") == std::string::npos); // no live entry
}

TEST_CASE("migrate::auth_from_pull_secrets: one entry per registry, per repository when namespaces use different accounts") {
  kube::Inventory inv;
  auto use = [&](std::string image, std::string ns, std::string secret) {
    kube::ImageUse u;
    u.image = std::move(image);
    u.kind = "Pod";
    u.ns = std::move(ns);
    u.name = "p";
    u.container = "c";
    u.container_type = "container";
    u.pull_secrets = {std::move(secret)};
    inv.uses.push_back(u);
  };
  use("registry.example.com/team-a/app:1", "team-a", "robot-a");
  use("registry.example.com/team-a/db:1", "team-a", "robot-a");
  use("registry.example.com/team-b/app:1", "team-b", "robot-b");
  use("quay.io/org/tool:1", "team-a", "quay");
  auto auths_of = [](const std::string& ns, const std::string& name) -> http::Result<nlohmann::json> {
    if (name == "quay")
      return nlohmann::json{{"quay.io", {{"username", "q"}, {"password", "qp"}}}};
    return nlohmann::json{{"https://registry.example.com/v2/", {{"username", name}, {"password", ns + "-pass"}}}};
  };
  std::vector<std::string> warnings;
  auto auth = migrate::auth_from_pull_secrets(inv, auths_of, warnings);
  CHECK(auth["quay.io"]["username"] == "q");
  CHECK_FALSE(auth.contains("registry.example.com"));
  CHECK(auth["registry.example.com/team-a/app"]["username"] == "robot-a");
  CHECK(auth["registry.example.com/team-a/db"]["username"] == "robot-a");
  CHECK(auth["registry.example.com/team-b/app"]["username"] == "robot-b");
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0] == "registry registry.example.com: 2 different accounts in the pull secrets; written per repository");
  CHECK(warnings[0].find("pass") == std::string::npos);
  // And the auth loader gives each image its account through those keys.
  auto config = migrate::AuthConfig::from_json(nlohmann::json::parse(auth.dump()), "auth.json",
                                               [](const std::string&) { return std::nullopt; });
  CHECK(config.find("registry.example.com", "team-a/app")->credentials.username() == "robot-a");
  CHECK(config.find("registry.example.com", "team-b/app")->credentials.username() == "robot-b");
  CHECK(config.find("quay.io", "org/tool")->credentials.username() == "q");
  CHECK(config.find("registry.example.com", "team-c/app") == nullptr);
}

TEST_CASE("kube::collect_images: operators' RELATED_IMAGE_* variables, service account, node selector") {
  auto dep = nlohmann::json::parse(R"({
    "metadata": {"name": "op", "namespace": "ops"},
    "spec": {"replicas": 0, "template": {"spec": {
      "serviceAccountName": "op-sa", "nodeSelector": {"kubernetes.io/arch": "arm64", "disk": "ssd"},
      "containers": [{"name": "manager", "image": "quay.io/acme/operator:1",
                      "env": [{"name": "RELATED_IMAGE_AGENT", "value": "quay.io/acme/agent:2"},
                              {"name": "RELATED_IMAGE_FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "y"}}},
                              {"name": "OTHER_IMAGE", "value": "quay.io/acme/not-this:1"}]}]}}}})");
  kube::Inventory inv;
  kube::collect_images(dep, "Deployment", inv);
  REQUIRE(inv.uses.size() == 2);
  CHECK(inv.uses[0].container_type == "container");
  CHECK(inv.uses[1].image == "quay.io/acme/agent:2");
  CHECK(inv.uses[1].container_type == "env");
  CHECK(inv.uses[1].env_name == "RELATED_IMAGE_AGENT");
  CHECK(inv.uses[1].container == "manager");
  CHECK(inv.uses[0].service_account == "op-sa");
  CHECK(inv.uses[0].node_selector == std::map<std::string, std::string>{{"kubernetes.io/arch", "arm64"}});
  // A suspended CronJob is still listed, and a pod spec without serviceAccountName uses "default".
  auto cj = nlohmann::json::parse(R"({"metadata": {"name": "r", "namespace": "n",
    "annotations": {"image-migrator/original-images": "{}"}},
    "spec": {"suspend": true, "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "r", "image": "r:1"}]}}}}}})");
  kube::collect_images(cj, "CronJob", inv);
  CHECK(inv.uses.back().image == "r:1");
  CHECK(inv.uses.back().service_account == "default");
  REQUIRE(inv.switched.size() == 1);
  CHECK(inv.switched[0].kind == "CronJob");
}

TEST_CASE("kube::parse_extra_resource") {
  auto r = kube::parse_extra_resource("argoproj.io/v1alpha1/rollouts=spec.template");
  REQUIRE(r);
  CHECK(r->group == "argoproj.io");
  CHECK(r->version == "v1alpha1");
  CHECK(r->resource == "rollouts");
  CHECK(r->path == std::vector<std::string>{"spec", "template"});
  CHECK(r->kind() == "rollouts.argoproj.io");
  CHECK(kube::parse_extra_resource("serving.knative.dev/v1/services=spec.template"));
  CHECK(kube::parse_extra_resource("apps.openshift.io/v1/deploymentconfigs=spec.template"));
  auto core = kube::parse_extra_resource("v1/pods=spec");
  REQUIRE(core);
  CHECK(core->group.empty());
  CHECK(core->kind() == "pods");
  CHECK(kube::parse_extra_resource("core/v1/pods=spec")->group.empty());
  CHECK(kube::parse_extra_resource("example.com/v1/apps=spec.components[].image")->path.back() == "image");
  for (const char* bad : {"argoproj.io/v1alpha1/rollouts", "rollouts=spec", "a/b/c/d=spec", "Argo.io/v1/r=spec",
                          "a.io/v1/r=", "a.io/v1/r=spec..template", "a.io/v1/r=spec/template", "a.io/v1/r=spec.x[0]"})
    CHECK_FALSE(kube::parse_extra_resource(bad));
}

TEST_CASE("kube::collect_extra_images: a pod template, a pod spec, images in a list") {
  kube::Inventory inv;
  auto rollout = nlohmann::json::parse(R"({"metadata": {"name": "c", "namespace": "s"},
    "spec": {"template": {"metadata": {}, "spec": {"containers": [{"name": "c", "image": "a:1"}]}}}})");
  kube::collect_extra_images(rollout, *kube::parse_extra_resource("argoproj.io/v1alpha1/rollouts=spec.template"), inv);
  auto ksvc = nlohmann::json::parse(R"({"metadata": {"name": "k", "namespace": "s"},
    "spec": {"template": {"spec": {"containers": [{"image": "b:1"}]}}}})");
  kube::collect_extra_images(ksvc, *kube::parse_extra_resource("serving.knative.dev/v1/services=spec.template.spec"), inv);
  auto app = nlohmann::json::parse(R"({"metadata": {"name": "x", "namespace": "s"},
    "spec": {"components": [{"image": "c:1"}, {"image": "d:1"}, {"noimage": 1}]}})");
  kube::collect_extra_images(app, *kube::parse_extra_resource("example.com/v1/apps=spec.components[].image"), inv);
  kube::collect_extra_images(app, *kube::parse_extra_resource("example.com/v1/apps=spec.nothing.here"), inv);
  REQUIRE(inv.uses.size() == 4);
  CHECK(inv.uses[0].image == "a:1");
  CHECK(inv.uses[0].kind == "rollouts.argoproj.io");
  CHECK(inv.uses[1].image == "b:1");
  CHECK(inv.uses[2].image == "c:1");
  CHECK(inv.uses[2].container_type == "field");
  CHECK(inv.uses[2].container == "spec.components[].image");
  CHECK(inv.uses[3].image == "d:1");
}

TEST_CASE("kube::rollout_state, as kubectl rollout status reads a status") {
  const auto* deploy = kube::kind_info("deployment");
  REQUIRE(deploy);
  CHECK(kube::kind_info("deploy") == deploy);
  CHECK(kube::kind_info("Deployment") == deploy);
  CHECK(kube::kind_info("sts")->kind == "StatefulSet");
  CHECK(kube::kind_info("nosuchkind") == nullptr);
  auto state = [&](const char* kind, const char* text) {
    return kube::rollout_state(nlohmann::json::parse(text), *kube::kind_info(kind));
  };
  CHECK_FALSE(state("deployment", R"({"metadata": {"generation": 3}, "spec": {"replicas": 2},
    "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}})").done);
  auto partial = state("deployment", R"({"metadata": {"generation": 3}, "spec": {"replicas": 2},
    "status": {"observedGeneration": 3, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2}})");
  CHECK_FALSE(partial.done);
  CHECK(partial.message == "1 of 2 new replicas updated");
  CHECK(state("deployment", R"({"metadata": {"generation": 3}, "spec": {"replicas": 2},
    "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}})").done);
  CHECK(state("deployment", R"({"metadata": {"generation": 2}, "spec": {"replicas": 0},
    "status": {"observedGeneration": 2}})").done); // scaled to zero
  auto stuck = state("deployment", R"({"metadata": {"generation": 3}, "spec": {"replicas": 1},
    "status": {"observedGeneration": 3, "updatedReplicas": 1,
               "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}})");
  CHECK(stuck.failed);
  CHECK_FALSE(state("statefulset", R"({"metadata": {"generation": 2}, "spec": {"replicas": 1},
    "status": {"observedGeneration": 2, "readyReplicas": 1, "currentRevision": "a", "updateRevision": "b"}})").done);
  CHECK(state("statefulset", R"({"metadata": {"generation": 2}, "spec": {"replicas": 1},
    "status": {"observedGeneration": 2, "readyReplicas": 1, "currentRevision": "b", "updateRevision": "b"}})").done);
  CHECK(state("statefulset", R"({"spec": {"updateStrategy": {"type": "OnDelete"}}})").done);
  CHECK_FALSE(state("daemonset", R"({"metadata": {"generation": 2}, "status": {"observedGeneration": 2,
    "desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 1}})").done);
  CHECK(state("daemonset", R"({"metadata": {"generation": 2}, "status": {"observedGeneration": 2,
    "desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 2}})").done);
  CHECK(state("pod", R"({"spec": {"containers": [{"name": "c", "image": "r.io/a/b@sha256:1"}]},
    "status": {"containerStatuses": [{"name": "c", "image": "r.io/a/b@sha256:1", "ready": true}]}})").done);
  CHECK(state("pod", R"({"spec": {"containers": [{"name": "c", "image": "r.io/a/b:2"}]},
    "status": {"containerStatuses": [{"name": "c", "image": "r.io/a/b:2", "ready": false,
               "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}})").failed);
  CHECK(state("cronjob", R"({})").done);
}
