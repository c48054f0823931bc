#include "migrate/tags.hpp"

#include <cctype>
#include <cstdio>
#include <ctime>

#include <algorithm>
#include <sstream>

namespace migrate {

namespace {

struct Comparator {
  std::string op;
  SemVer version;
};

std::optional<std::vector<Comparator>> parse_range(const std::string& text) {
  std::vector<Comparator> out;
  std::stringstream ss(text);
  std::string word;
  while (ss >> word) {
    std::size_t n = 0;
    while (n < word.size() && std::string("<>=!").find(word[n]) != std::string::npos)
      ++n;
    std::string op = n == 0 ? "=" : word.substr(0, n);
    if (op != "=" && op != ">" && op != ">=" && op != "<" && op != "<=" && op != "!=")
      return std::nullopt;
    auto v = SemVer::parse(word.substr(n));
    if (!v)
      return std::nullopt;
    out.push_back({op, *v});
  }
  if (out.empty())
    return std::nullopt;
  return out;
}

bool satisfies(const SemVer& v, const std::vector<Comparator>& range) {
  // As in npm's semver: a prerelease only matches a range that names a prerelease itself, so
  // "<2" does not pick up 2.0.0-rc1.
  if (!v.prerelease.empty() &&
      std::none_of(range.begin(), range.end(), [](const Comparator& c) { return !c.version.prerelease.empty(); }))
    return false;
  for (const auto& c : range) {
    int r = compare(v, c.version);
    bool ok = c.op == "=" ? r == 0 : c.op == "!=" ? r != 0 : c.op == ">" ? r > 0 : c.op == ">=" ? r >= 0 : c.op == "<" ? r < 0 : r <= 0;
    if (!ok)
      return false;
  }
  return true;
}

} // namespace

std::optional<SemVer> SemVer::parse(const std::string& text) {
  std::string t = text;
  if (!t.empty() && (t[0] == 'v' || t[0] == 'V'))
    t.erase(0, 1);
  if (auto plus = t.find('+'); plus != std::string::npos)
    t.erase(plus);
  SemVer v;
  if (auto dash = t.find('-'); dash != std::string::npos) {
    v.prerelease = t.substr(dash + 1);
    t.erase(dash);
    if (v.prerelease.empty())
      return std::nullopt;
  }
  long* parts[] = {&v.major, &v.minor, &v.patch};
  std::size_t start = 0;
  for (int i = 0; i < 3; ++i) {
    auto dot = t.find('.', start);
    std::string p = t.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (p.empty() || p.size() > 9 || p.find_first_not_of("0123456789") != std::string::npos)
      return std::nullopt;
    *parts[i] = std::stol(p);
    if (dot == std::string::npos)
      return i == 0 && t.empty() ? std::nullopt : std::optional<SemVer>(v);
    start = dot + 1;
  }
  return std::nullopt; // a fourth component
}

int compare(const SemVer& a, const SemVer& b) {
  if (a.major != b.major)
    return a.major < b.major ? -1 : 1;
  if (a.minor != b.minor)
    return a.minor < b.minor ? -1 : 1;
  if (a.patch != b.patch)
    return a.patch < b.patch ? -1 : 1;
  if (a.prerelease == b.prerelease)
    return 0;
  if (a.prerelease.empty())
    return 1;
  if (b.prerelease.empty())
    return -1;
  return a.prerelease < b.prerelease ? -1 : 1;
}

std::string TagFilter::validate() const {
  for (const auto* r : {&regex, &exclude}) {
    if (r->empty())
      continue;
    try {
      std::regex re(*r, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return "invalid regular expression \"" + *r + "\": " + e.what();
    }
  }
  if (!semver.empty() && !parse_range(semver))
    return "invalid semver range \"" + semver + "\" (want comparators like \">=1.2 <2\")";
  if (latest < 0)
    return "latest must be a positive number";
  return "";
}

http::Result<std::vector<std::string>> TagFilter::apply(const std::vector<std::string>& tags,
                                                       const CreatedTimes& created) const {
  std::optional<std::regex> keep, drop;
  if (!regex.empty())
    keep.emplace(regex, std::regex::ECMAScript);
  if (!exclude.empty())
    drop.emplace(exclude, std::regex::ECMAScript);
  auto range = semver.empty() ? std::nullopt : parse_range(semver);
  std::vector<std::string> out;
  for (const auto& t : tags) {
    if (keep && !std::regex_match(t, *keep))
      continue;
    if (drop && std::regex_match(t, *drop))
      continue;
    if (range) {
      auto v = SemVer::parse(t);
      if (!v || !satisfies(*v, *range))
        continue;
    }
    out.push_back(t);
  }
  if (latest <= 0)
    return out;
  std::vector<std::pair<SemVer, std::string>> versions;
  for (const auto& t : out)
    if (auto v = SemVer::parse(t))
      versions.emplace_back(*v, t);
  if (versions.size() == out.size() || !created) {
    std::stable_sort(versions.begin(), versions.end(),
                     [](const auto& a, const auto& b) { return compare(a.first, b.first) > 0; });
    out.clear();
    for (std::size_t i = 0; i < versions.size() && static_cast<int>(i) < latest; ++i)
      out.push_back(versions[i].second);
    return out;
  }
  auto times = created(out);
  if (!times)
    return times.error();
  auto when = [&](const std::string& tag) {
    auto it = times->find(tag);
    return it == times->end() ? -1e300 : it->second;
  };
  std::stable_sort(out.begin(), out.end(), [&](const auto& a, const auto& b) { return when(a) > when(b); });
  if (static_cast<int>(out.size()) > latest)
    out.resize(static_cast<std::size_t>(latest));
  return out;
}

} // namespace migrate
