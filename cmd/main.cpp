#include "cmd/app.hpp"
#include "util/process.hpp"

int main(int argc, char** argv) {
  // Before anything reads auth.json or a kubeconfig: their secrets must not end up in a core file.
  util::keep_secrets_out_of_core_dumps();
  return cmd::run(argc, argv);
}
