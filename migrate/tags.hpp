#pragma once
// Tag selection for rules that copy every tag: include/exclude regular expressions, a semantic
// version range (">=1.2 <2"), and "latest N" (newest N by semantic version).

#include "http/result.hpp"

#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <vector>

namespace migrate {

/// A parsed semantic version: [v]MAJOR[.MINOR[.PATCH]][-PRERELEASE][+BUILD].
struct SemVer {
  long major = 0, minor = 0, patch = 0;
  std::string prerelease;
  static std::optional<SemVer> parse(const std::string& text);
};
/// <0, 0, >0 like strcmp; a prerelease sorts before its release.
int compare(const SemVer& a, const SemVer& b);

/// When each of some tags' images was created (the image config's "created"), in seconds since the
/// epoch; tags without a time are left out. Used by "latest N" when tags are not versions.
using CreatedTimes = std::function<http::Result<std::map<std::string, double>>(const std::vector<std::string>& tags)>;

struct TagFilter {
  std::string regex;   ///< keep tags matching (whole tag); "" = all
  std::string exclude; ///< drop tags matching (whole tag)
  std::string semver;  ///< space-separated comparators: >=1.2 <2, =1.4.0, >1, <=3
  int latest = 0;      ///< keep the newest N: by semantic version when every tag is one, else by creation time (0 = all)

  bool empty() const { return regex.empty() && exclude.empty() && semver.empty() && latest == 0; }
  /// Checks the expressions; returns "" or the reason it is invalid.
  std::string validate() const;
  /// The tags that pass, in the order given (latest N: newest first). For "latest N" among tags that
  /// are not all versions, `created` gives creation times (tags without one count as oldest); without
  /// it only the tags that are versions are ranked.
  http::Result<std::vector<std::string>> apply(const std::vector<std::string>& tags, const CreatedTimes& created = {}) const;
};

} // namespace migrate
