#include "cmd/app.hpp"

#include "http/client.hpp"
#include "migrate/config.hpp"

#include <cstdio>
#include <exception>
#include <string>

namespace cmd {

int run(int argc, char** argv) {
  http::global_init();
  try {
    return run_migrate(argc, argv);
  } catch (const migrate::ConfigError& e) {
    std::fprintf(stderr, "image-migrator: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "image-migrator: internal error: %s\n", e.what());
    return 2;
  }
}

} // namespace cmd
