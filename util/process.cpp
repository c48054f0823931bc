#include "util/process.hpp"

#include <mutex>
#include <set>

#include <sys/prctl.h>
#include <sys/resource.h>

namespace util {

namespace {
std::mutex& secret_mutex() {
  static std::mutex m;
  return m;
}
std::set<std::string, std::less<>>& secret_names() {
  static std::set<std::string, std::less<>> names;
  return names;
}
} // namespace

void mark_secret_environment_variable(const std::string& name) {
  std::lock_guard lock(secret_mutex());
  secret_names().insert(name);
}

bool withheld_from_children(std::string_view entry) {
  const std::string_view name = entry.substr(0, entry.find('='));
  if (name == "IMAGE_MIGRATOR_KEY")
    return true;
  std::lock_guard lock(secret_mutex());
  return secret_names().count(name) > 0;
}

bool keep_secrets_out_of_core_dumps() {
  const rlimit none{0, 0};
  const bool no_core = ::setrlimit(RLIMIT_CORE, &none) == 0;
  const bool not_dumpable = ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0;
  return no_core && not_dumpable;
}

} // namespace util
