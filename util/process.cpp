#include "util/process.hpp"

#include <sys/prctl.h>
#include <sys/resource.h>

namespace util {

bool keep_secrets_out_of_core_dumps() {
  const rlimit none{0, 0};
  const bool no_core = ::setrlimit(RLIMIT_CORE, &none) == 0;
  const bool not_dumpable = ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0;
  return no_core && not_dumpable;
}

} // namespace util
