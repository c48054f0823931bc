#include "cmd/app.hpp"
#include "cmd/inputs.hpp"

#include "migrate/config.hpp"
#include "migrate/secrets.hpp"
#include "util/json.hpp"

#include <cstdio>
#include <iostream>

#include <unistd.h>

namespace cmd {

namespace {

int run_auth_export(int argc, char** argv) {
  cxxopts::Options opts("image-migrator auth export",
                        "Prints auth.json with its encrypted passwords decrypted (with this machine's key), to take it "
                        "where there is no key, e.g.\n  image-migrator auth export --auth auth.json | kubectl -n "
                        "image-migrator create secret generic image-migrator-auth --from-file=auth.json=/dev/stdin\n"
                        "(docs/KUBERNETES.md). The file itself is left as it is.");
  // clang-format off
  opts.add_options()
    ("auth", "auth file (JSON or YAML)", cxxopts::value<std::string>()->default_value("./auth.json"))
    ("o,output", "write to this file (mode 0600) instead of stdout", cxxopts::value<std::string>())
    ("expand-env", "also replace $VAR references by the variables' values (they are kept as written otherwise)")
    ("h,help", "print this help");
  // clang-format on
  auto parsed = parse(opts, argc, argv);
  if (!parsed)
    return 2;
  const auto& args = *parsed;
  if (args.count("help")) {
    std::cout << opts.help() << "\n";
    return 0;
  }
  std::string path = args["auth"].as<std::string>();
  bool to_file = args.count("output") > 0;
  // Plaintext passwords on a screen are what the encryption is there to avoid.
  if (!to_file && isatty(STDOUT_FILENO))
    throw migrate::ConfigError("auth export prints plaintext passwords: pipe it (e.g. into kubectl create secret ... "
                               "--from-file=auth.json=/dev/stdin) or give -o FILE, not a terminal");
  nlohmann::ordered_json doc;
  std::string text = migrate::read_text_file(path);
  bool yaml = path.ends_with(".yaml") || path.ends_with(".yml");
  try {
    // JSON keeps its key order; YAML goes through the loader (comments are not kept either way).
    doc = yaml ? nlohmann::ordered_json(migrate::parse_document(text, path)) : util::parse_json<nlohmann::ordered_json>(text);
  } catch (const nlohmann::json::exception&) {
    doc = nlohmann::ordered_json(migrate::parse_document(text, path)); // names line and column
  }
  std::vector<std::string> notes;
  auto env = migrate::process_env();
  auto plain = migrate::decrypt_auth_document(doc, path, migrate::SecretKey::load(false, env),
                                              args.count("expand-env") ? &env : nullptr, notes);
  std::string out = plain.dump(2) + "\n";
  for (const auto& n : notes)
    std::fprintf(stderr, "image-migrator auth export: note: %s\n", n.c_str());
  if (to_file) {
    std::string file = args["output"].as<std::string>();
    migrate::write_file_atomically(file, out, 0600);
    std::fprintf(stderr, "image-migrator auth export: %s written (mode 0600, plaintext)\n", file.c_str());
  } else {
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
  }
  return 0;
}

} // namespace

int run_auth(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help") {
    std::cout << "Usage: image-migrator auth export [--auth FILE] [-o FILE] [--expand-env]\n\n"
                 "  export   print auth.json with its encrypted passwords decrypted, for a place without the key "
                 "(a Kubernetes Secret)\n";
    return argc < 2 ? 2 : 0;
  }
  if (std::string(argv[1]) == "export")
    return run_auth_export(argc - 1, argv + 1);
  std::fprintf(stderr, "image-migrator auth: unknown subcommand \"%s\" (known: export)\n", argv[1]);
  return 2;
}

} // namespace cmd
