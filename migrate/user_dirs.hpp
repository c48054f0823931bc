#pragma once
// Where image-migrator keeps files of its own for the user running it.

#include "util/env.hpp"

#include <filesystem>

namespace migrate {

/// $<xdg_variable>/image-migrator, else $HOME/<under_home>/image-migrator when $HOME is an existing
/// directory (XDG base directory spec: a relative $<xdg_variable> is ignored); empty without either:
/// never a shared directory such as /tmp, where another user could plant a file.
inline std::filesystem::path user_dir(const util::EnvLookup& env, const char* xdg_variable, const char* under_home) {
  const std::string xdg = util::env_or_empty(env, xdg_variable);
  if (xdg.starts_with('/')) // the spec: a relative path is invalid and ignored
    return std::filesystem::path(xdg) / "image-migrator";
  // $HOME must be there already: a job run with HOME=/nonexistent (the usual "no home") must not
  // create it, nor keep a key in a directory that vanishes with its container.
  const std::string home = util::env_or_empty(env, "HOME");
  std::error_code ec;
  if (home.starts_with('/') && std::filesystem::is_directory(home, ec))
    return std::filesystem::path(home) / under_home / "image-migrator";
  return {};
}

} // namespace migrate
