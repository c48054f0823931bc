#include "cmd/app.hpp"
#include "cmd/inputs.hpp"

#include "http/client.hpp"
#include "migrate/config.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

namespace cmd {

namespace {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(int, char**);
};

// Adding a subcommand here lists it in the top-level --help, dispatches to it and lets a typo of it
// be suggested; the README gives each one a section.
const Command commands[] = {
    {"config", "find the images a Kubernetes cluster uses; write images.json and an audit", run_config},
    {"verify", "compare the source and destination digests of every rule; --cluster: is every workload ready for the cutover (reads only)", run_verify_any},
    {"rewrite", "print the changes that point a cluster's workloads at their migrated images; --apply makes them", run_rewrite},
    {"rollback", "undo rewrite --apply: restore the images it recorded on each workload", run_rollback},
    {"auth", "auth export: auth.json with its passwords decrypted, for a Kubernetes Secret", run_auth},
};

std::string command_names() {
  std::string out;
  for (const auto& c : commands)
    out += (out.empty() ? "" : ", ") + std::string(c.name);
  return out;
}

} // namespace

std::string commands_help() {
  std::string out = "Commands (image-migrator COMMAND --help for each):\n";
  out += "  (none)     copy images between registries: the flags below\n";
  for (const auto& c : commands) {
    std::string name = c.name;
    out += "  " + name + std::string(name.size() < 11 ? 11 - name.size() : 1, ' ') + c.summary + "\n";
  }
  return out;
}

int run(int argc, char** argv) {
  // libcurl takes the proxy of http:// URLs only from lower-case http_proxy (a guard for CGI
  // programs, where HTTP_PROXY can come from a request header). A command-line tool has no such
  // header, and Go tools (skopeo, crane, regctl) honour HTTP_PROXY: so do we. Set before libcurl
  // starts, by the program, not by a library.
  if (!std::getenv("http_proxy"))
    if (const char* upper = std::getenv("HTTP_PROXY"); upper && *upper)
      ::setenv("http_proxy", upper, 0);
  http::global_init();
  try {
    if (argc > 1 && argv[1][0] != '-') {
      std::string word = argv[1];
      for (const auto& c : commands)
        if (word == c.name)
          return c.run(argc - 1, argv + 1);
      if (word == "help") {
        char help[] = "--help";
        char* args[] = {argv[0], help, nullptr};
        return run_migrate(2, args);
      }
      // The copy command takes no positional argument: a word here is a command, mistyped.
      std::vector<std::string> names;
      for (const auto& c : commands)
        names.emplace_back(c.name);
      std::string guess = closest(word, names);
      std::string hint = guess.empty() ? "" : ": did you mean \"" + guess + "\"?";
      std::fprintf(stderr, "image-migrator: unknown command \"%s\"%s (commands: %s; see image-migrator --help)\n",
                   word.c_str(), hint.c_str(), command_names().c_str());
      return 2;
    }
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
