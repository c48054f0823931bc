// migrate's use of a cluster's inventory: images.json planning (flattening, conflicts), the audit
// report and table, rewrite's kubectl/kustomize plan, credentials from pull secrets. (The inventory
// itself, kube::, is tested in kube_test.cpp.)
#include "kube/discovery.hpp"
#include "migrate/config.hpp"
#include "migrate/discover.hpp"
#include "migrate/rewrite.hpp"

#include <doctest/doctest.h>

#include <set>

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
  CHECK(nginx["flags"]["mutableTag"] == true); // nginx:1.25 seen running two digests: mutable in fact
  CHECK(nginx["flags"]["mutableBecause"] == "drift");
  CHECK(nginx["flags"]["pullSecrets"] == nlohmann::json{"web/regcred"});
  CHECK(nginx["runningDigests"].size() == 2);
  CHECK(nginx["flags"]["inTarget"].is_null());
  const auto& redis = report["images"][1];
  CHECK(redis["flags"]["mutableTag"] == true);
  CHECK(redis["flags"]["mutableBecause"] == "latest");
  CHECK(redis["flags"]["inTarget"] == true);
  CHECK(report["totals"]["docker.io"]["images"] == 2);
  auto table = migrate::audit_table(report);
  CHECK(table.find("docker.io/library/nginx:1.25 | 2 | 2 | yes | - | yes | 1 | ?") != std::string::npos);
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

