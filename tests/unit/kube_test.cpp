#include "kube/client.hpp"
#include "kube/discovery.hpp"
#include "kube/kubeconfig.hpp"
#include "kube/workloads.hpp"
#include "migrate/config.hpp"
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
  CHECK_FALSE(inv.switched[0].owned);
  // The Deployment controller copies a Deployment's annotations onto its ReplicaSets: such a copy is owned.
  auto rs = nlohmann::json::parse(R"({"metadata": {"name": "web-1", "namespace": "n",
    "annotations": {"image-migrator/original-images": "{}"},
    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u", "controller": true}]},
    "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "w:1"}]}}}})");
  kube::collect_images(rs, "ReplicaSet", inv);
  REQUIRE(inv.switched.size() == 2);
  CHECK(inv.switched[1].owned);
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
  // kubectl's fully qualified spellings, and a suggestion for a typo.
  CHECK(kube::kind_info("deployment.apps") == deploy);
  CHECK(kube::kind_info("deployments.v1.apps") == deploy);
  CHECK(kube::kind_info("cronjob.batch")->kind == "CronJob");
  CHECK(kube::kind_info("deployment.batch") == nullptr);
  CHECK(kube::kind_info("pod.apps") == nullptr);
  CHECK(kube::suggest_kind("deploymnet") == "deployment");
  CHECK(kube::suggest_kind("statefullset") == "statefulset");
  CHECK(kube::suggest_kind("cronjbo") == "cronjob");
  CHECK(kube::suggest_kind("configmap").empty());
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
