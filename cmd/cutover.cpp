#include "cmd/cutover.hpp"

#include "kube/discovery.hpp"
#include "kube/workloads.hpp"
#include "migrate/config.hpp"
#include "util/text.hpp"
#include "util/time.hpp"

#include <algorithm>
#include <cstdlib>

#include <pwd.h>
#include <unistd.h>

namespace cmd {

std::pair<std::string, std::string> workload_option(const cxxopts::ParseResult& args) {
  if (!args.count("workload"))
    return {};
  std::string v = args["workload"].as<std::string>();
  auto slash = v.find('/');
  std::string kind = slash == std::string::npos ? "" : v.substr(0, slash);
  std::string name = slash == std::string::npos ? "" : v.substr(slash + 1);
  if (!kind.empty() && !kube::kind_info(kind)) {
    std::string suggestion = kube::suggest_kind(kind);
    throw migrate::ConfigError("--workload: unknown kind " + util::escape_control(kind.substr(0, 64)) +
                               (suggestion.empty() ? "" : " (did you mean " + suggestion + "?)") +
                               "; the kinds are those kubectl names: deployment, statefulset, daemonset, cronjob, "
                               "replicaset, replicationcontroller, pod, job");
  }
  if (!kube::kind_info(kind) || name.empty() || name.size() > 253 ||
      name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-.") != std::string::npos)
    throw migrate::ConfigError("--workload must be KIND/NAME (e.g. deployment/web, statefulset/db, cronjob/report), "
                               "not \"" + util::escape_control(v) + "\"");
  std::string ns = args.count("namespaces") ? args["namespaces"].as<std::string>() : "";
  if (ns.empty() || ns.find(',') != std::string::npos)
    throw migrate::ConfigError("--workload needs its namespace: -n NAMESPACE (one)");
  return {kube::kind_info(kind)->kind, name};
}

void keep_workload(migrate::ClusterCheck& check, const std::pair<std::string, std::string>& workload,
                   const std::string& ns) {
  if (workload.first.empty())
    return;
  std::erase_if(check.workloads, [&](const migrate::WorkloadCheck& w) {
    return w.kind != workload.first || w.name != workload.second || w.ns != ns;
  });
}

std::string who_am_i() {
  std::string user;
  for (const char* var : {"USER", "LOGNAME"})
    if (const char* v = std::getenv(var); v && *v) {
      user = v;
      break;
    }
  if (user.empty()) { // a pod or a cron job: no login variables, but a uid (and maybe its passwd name)
    struct passwd pw {};
    struct passwd* found = nullptr;
    char buffer[1024];
    if (getpwuid_r(geteuid(), &pw, buffer, sizeof buffer, &found) == 0 && found && found->pw_name && *found->pw_name)
      user = found->pw_name;
    else
      user = "uid-" + std::to_string(geteuid());
  }
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0)
    host[0] = '\0';
  std::string who = user + "@" + (host[0] ? host : "unknown");
  // An annotation value is ours to keep printable.
  std::replace_if(who.begin(), who.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }, '?');
  return who.substr(0, 200);
}

std::string now_rfc3339() { return util::format_rfc3339(std::chrono::system_clock::now()); }

} // namespace cmd
