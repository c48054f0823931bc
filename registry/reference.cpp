#include "registry/reference.hpp"

#include "registry/digest.hpp"
#include "util/text.hpp"

#include <algorithm>
#include <cctype>

namespace registry {

namespace {

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

/// [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
bool valid_path_component(std::string_view c) {
  std::size_t i = 0;
  auto alnum_run = [&] {
    std::size_t start = i;
    while (i < c.size() && is_lower_alnum(c[i]))
      ++i;
    return i > start;
  };
  if (!alnum_run())
    return false;
  while (i < c.size()) {
    if (c[i] == '.') {
      ++i;
    } else if (c[i] == '_') {
      ++i;
      if (i < c.size() && c[i] == '_')
        ++i;
    } else if (c[i] == '-') {
      while (i < c.size() && c[i] == '-')
        ++i;
    } else {
      return false;
    }
    if (!alnum_run())
      return false;
  }
  return true;
}

bool valid_domain_component(std::string_view c) {
  if (c.empty() || !is_alnum(c.front()) || !is_alnum(c.back()))
    return false;
  return std::all_of(c.begin(), c.end(), [](char ch) { return is_alnum(ch) || ch == '-'; });
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool is_hex_identifier(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool has_upper(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

/// Whether `text` reads as a digest: a registered algorithm (or one in use), ':', and an encoded part.
/// Narrower than the grammar on purpose: "user:pw@reg.io:5000" has the grammar's shape too.
bool digest_shaped(std::string_view text) {
  const auto colon = text.find(':');
  if (colon == std::string_view::npos || colon + 1 == text.size())
    return false;
  const std::string_view algorithm = text.substr(0, colon), encoded = text.substr(colon + 1);
  if (algorithm != "sha256" && algorithm != "sha384" && algorithm != "sha512" && algorithm != "blake3")
    return false;
  return std::all_of(encoded.begin(), encoded.end(), [](char c) { return is_alnum(c) || c == '=' || c == '_' || c == '-'; });
}

/// Where credentials at the start of `text` end (their last '@'), or npos. The '@' of a digest
/// (name@sha256:...) is not theirs; any other '@' is: whatever comes before it, up to a scheme, may be
/// (part of) a user name or a password, and is never repeated ("@garbage" is thus refused as well).
/// An OCI layout path ("oci:dir@2024:tag") is a file name, not a reference to a host.
std::size_t userinfo_end(std::string_view text) {
  if (Reference::is_layout(text))
    return std::string_view::npos;
  std::string_view rest = text;
  if (const auto at = rest.rfind('@'); at != std::string_view::npos && digest_shaped(rest.substr(at + 1)))
    rest = rest.substr(0, at);
  return rest.rfind('@');
}

/// Where what may be credentials starts: after a scheme ("https://"), or at 0.
std::size_t userinfo_start(std::string_view text, std::size_t end) {
  const auto scheme = text.substr(0, end).find("://");
  return scheme == std::string_view::npos ? 0 : scheme + 3;
}

/// `text` as a message may quote it: credentials redacted, control characters escaped.
std::string quotable(std::string_view text) {
  std::string out;
  for (char c : without_userinfo(text)) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[(static_cast<unsigned char>(c) >> 4) & 0xf];
      out += hex[static_cast<unsigned char>(c) & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

http::Error bad(std::string_view text, const std::string& why) {
  return http::make_error(http::ErrorKind::invalid, "parsing reference \"" + quotable(text) + "\": " + why);
}

enum class Mode { normalized, explicit_registry };

Result<Reference> parse(std::string_view text, Mode mode) {
  Reference ref;
  ref.original.assign(text);
  if (text.empty())
    return bad(text, "empty reference");
  if (has_userinfo(text))
    return bad(text, "an '@' that starts no digest (name@sha256:<64 hex>): a reference cannot hold credentials "
                     "(user:password@), put them in the auth file");
  if (text.find("://") != std::string_view::npos)
    return bad(text, "a reference has no scheme (remove http:// or https://)");
  if (std::any_of(text.begin(), text.end(), [](unsigned char c) { return std::isspace(c) || c < 0x20; }))
    return bad(text, "contains white space");

  std::string_view rest = text;
  if (auto at = rest.find('@'); at != std::string_view::npos) {
    ref.digest.assign(rest.substr(at + 1));
    rest = rest.substr(0, at);
    if (!valid_digest(ref.digest))
      return bad(text, "invalid digest \"" + ref.digest + "\" (want sha256:<64 lower-case hex>)");
  }
  auto last_slash = rest.rfind('/');
  auto last_colon = rest.rfind(':');
  if (last_colon != std::string_view::npos && (last_slash == std::string_view::npos || last_colon > last_slash)) {
    ref.tag.assign(rest.substr(last_colon + 1));
    rest = rest.substr(0, last_colon);
    if (!valid_tag(ref.tag))
      return bad(text, "invalid tag \"" + ref.tag + "\"");
  }
  if (rest.empty())
    return bad(text, "missing repository name");

  auto slash = rest.find('/');
  std::string_view first = rest.substr(0, slash);
  bool first_is_registry = slash != std::string_view::npos &&
                           (looks_like_registry(first) || (mode == Mode::normalized && has_upper(first)));
  if (first_is_registry) {
    ref.registry.assign(first);
    ref.repository.assign(rest.substr(slash + 1));
  } else {
    ref.repository.assign(rest);
  }

  if (mode == Mode::normalized) {
    if (ref.registry.empty() && slash == std::string_view::npos && is_hex_identifier(ref.repository))
      return bad(text, "a 64-character hexadecimal name is an image ID, not a repository");
    if (ref.registry.empty() || ref.registry == "index.docker.io")
      ref.registry = std::string(docker_hub);
    if (ref.registry == docker_hub && ref.repository.find('/') == std::string::npos)
      ref.repository = "library/" + ref.repository;
  }

  if (!ref.registry.empty() && !valid_registry(ref.registry))
    return bad(text, "invalid registry host \"" + ref.registry + "\"");
  if (has_upper(ref.repository))
    return bad(text, "repository name must be lowercase");
  if (!valid_repository(ref.repository))
    return bad(text, "invalid repository name \"" + ref.repository + "\"");
  if (ref.registry.size() + 1 + ref.repository.size() > 255)
    return bad(text, "repository name longer than 255 characters");
  return ref;
}

} // namespace

bool looks_like_registry(std::string_view component) {
  return component.find_first_of(".:") != std::string_view::npos || component == "localhost" ||
         (!component.empty() && component.front() == '[');
}

bool valid_tag(std::string_view tag) {
  if (tag.empty() || tag.size() > 128)
    return false;
  auto word = [](char c) { return is_alnum(c) || c == '_'; };
  if (!word(tag.front()))
    return false;
  return std::all_of(tag.begin(), tag.end(), [&](char c) { return word(c) || c == '.' || c == '-'; });
}

bool valid_repository(std::string_view repository) {
  if (repository.empty() || repository.size() > 255)
    return false;
  std::size_t start = 0;
  while (true) {
    auto slash = repository.find('/', start);
    if (!valid_path_component(repository.substr(start, slash - start)))
      return false;
    if (slash == std::string_view::npos)
      return true;
    start = slash + 1;
  }
}

std::string invalid_name(std::string_view repository, std::string_view reference) {
  if (!valid_repository(repository))
    return "\"" + util::escape_control(repository) + "\" is not a repository name";
  if (reference.empty())
    return {};
  if (reference.find(':') != std::string_view::npos) {
    if (!valid_digest(reference))
      return "\"" + util::escape_control(reference) + "\" is not a digest (sha256:<64 hex> or sha512:<128 hex>)";
  } else if (!valid_tag(reference)) {
    return "\"" + util::escape_control(reference) + "\" is not a tag ([A-Za-z0-9_][A-Za-z0-9._-]{0,127})";
  }
  return {};
}

bool valid_registry(std::string_view host) {
  if (host.empty())
    return false;
  if (host.front() == '[') {
    auto close = host.find(']');
    if (close == std::string_view::npos || close < 2)
      return false;
    auto inner = host.substr(1, close - 1);
    if (!std::all_of(inner.begin(), inner.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) || c == ':'; }))
      return false;
    auto after = host.substr(close + 1);
    return after.empty() || (after.front() == ':' && all_digits(after.substr(1)));
  }
  if (auto colon = host.find(':'); colon != std::string_view::npos) {
    if (!all_digits(host.substr(colon + 1)))
      return false;
    host = host.substr(0, colon);
  }
  std::size_t start = 0;
  while (true) {
    auto dot = host.find('.', start);
    if (!valid_domain_component(host.substr(start, dot - start)))
      return false;
    if (dot == std::string_view::npos)
      return true;
    start = dot + 1;
  }
}

bool is_docker_hub(std::string_view registry) {
  return registry == "docker.io" || registry == "index.docker.io" || registry == "registry-1.docker.io" ||
         registry == "registry.hub.docker.com";
}

bool has_userinfo(std::string_view text) { return userinfo_end(text) != std::string_view::npos; }

std::string without_userinfo(std::string_view text) {
  const auto at = userinfo_end(text);
  if (at == std::string_view::npos)
    return std::string(text);
  const std::size_t start = userinfo_start(text, at);
  return std::string(text.substr(0, start)) + "<redacted>" + std::string(text.substr(at));
}

Result<Reference> Reference::parse_normalized(std::string_view text) { return parse(text, Mode::normalized); }

Result<Reference> Reference::parse_explicit(std::string_view text) { return parse(text, Mode::explicit_registry); }

std::string Reference::name() const {
  if (!layout.empty())
    return "oci:" + layout;
  return registry.empty() ? repository : registry + "/" + repository;
}

Result<Reference> Reference::parse_layout(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return http::make_error(http::ErrorKind::invalid, "invalid OCI layout reference \"" + std::string(text) + "\": " + why);
  };
  if (!is_layout(text))
    return bad("it must start with oci:");
  Reference r;
  r.original = std::string(text);
  std::string rest(text.substr(4));
  if (auto at = rest.rfind('@'); at != std::string::npos && valid_digest(rest.substr(at + 1))) {
    r.digest = rest.substr(at + 1);
    rest.resize(at);
  }
  if (auto colon = rest.rfind(':'); colon != std::string::npos && rest.find('/', colon) == std::string::npos) {
    r.tag = rest.substr(colon + 1);
    rest.resize(colon);
    if (!valid_tag(r.tag))
      return bad("\"" + r.tag + "\" is not a valid tag");
  }
  while (rest.size() > 1 && rest.back() == '/')
    rest.pop_back();
  if (rest.empty())
    return bad("no directory");
  r.layout = rest;
  return r;
}

std::string Reference::to_string() const {
  std::string out = name();
  if (!tag.empty())
    out += ":" + tag;
  if (!digest.empty())
    out += "@" + digest;
  return out;
}

std::string Reference::normalized() const {
  if (!digest.empty())
    return name() + "@" + digest;
  return name() + ":" + (tag.empty() ? std::string("latest") : tag);
}

std::string referrers_tag(const std::string& digest) {
  std::string tag = digest;
  if (auto colon = tag.find(':'); colon != std::string::npos)
    tag[colon] = '-';
  return tag.substr(0, 128);
}

bool is_referrers_tag(const std::string& tag) {
  if (tag.size() < 7 + 64 || tag.compare(0, 7, "sha256-") != 0)
    return false;
  for (std::size_t i = 7; i < 7 + 64; ++i)
    if (!std::isxdigit(static_cast<unsigned char>(tag[i])) || std::isupper(static_cast<unsigned char>(tag[i])))
      return false;
  return tag.size() == 7 + 64 || (tag[7 + 64] == '.' && valid_tag(tag));
}

} // namespace registry
