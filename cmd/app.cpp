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
    if (argc > 1 && std::string(argv[1]) == "config")
      return run_config(argc - 1, argv + 1);
    if (argc > 1 && std::string(argv[1]) == "verify")
      return run_verify(argc - 1, argv + 1);
    if (argc > 1 && std::string(argv[1]) == "rewrite")
      return run_rewrite(argc - 1, argv + 1);
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
