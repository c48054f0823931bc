#pragma once
// Image references: registry/repository[:tag][@digest], parsed by the grammar of the distribution
// project (docker's reference package). Immutable values; the original text is kept for messages.

#include "http/result.hpp"

#include <string>
#include <string_view>

namespace registry {

using http::Result;

/// Docker Hub's canonical name, and the host its API really lives on.
inline constexpr std::string_view docker_hub = "docker.io";

struct Reference {
  std::string registry;   ///< host[:port], e.g. "docker.io", "127.0.0.1:5000"
  std::string repository; ///< path below the registry, e.g. "library/nginx"
  std::string tag;        ///< may be empty
  std::string digest;     ///< "sha256:<hex>" or empty
  std::string original;   ///< the text it was parsed from
  std::string layout;     ///< a local OCI image layout's directory ("oci:DIR[:TAG]"); registry and repository are then empty

  /// Docker-style parsing: a first component without '.', ':' or "localhost" (and lower-case) is
  /// not a registry, so `nginx` becomes docker.io/library/nginx. Tag/digest are kept as given.
  static Result<Reference> parse_normalized(std::string_view text);

  /// Strict parsing for migration rules: no Docker Hub defaults. The first component is the registry
  /// when it looks like a host; otherwise `registry` stays empty for the caller to fill in.
  static Result<Reference> parse_explicit(std::string_view text);

  /// "oci:DIR[:TAG][@DIGEST]": a local OCI image layout, as skopeo names it. The directory is everything
  /// up to the last ':' that is followed by a valid tag.
  static Result<Reference> parse_layout(std::string_view text);

  /// Whether `text` names an OCI layout ("oci:...").
  /// A registry host named "oci" with a port ("oci:5000/ns/app") is not one.
  static bool is_layout(std::string_view text) {
    if (text.rfind("oci:", 0) != 0)
      return false;
    std::size_t i = 4;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9')
      ++i;
    return i == 4 || i >= text.size() || text[i] != '/';
  }

  /// registry/repository, or "oci:DIR"
  std::string name() const;
  /// registry/repository[:tag][@digest]
  std::string to_string() const;
  /// docker's familiar normalized form: tag dropped when a digest is present, :latest when neither.
  std::string normalized() const;
  /// The tag or digest to ask the registry for (digest wins).
  std::string reference() const { return digest.empty() ? tag : digest; }
};

/// Whether `component` looks like a registry host (contains '.' or ':', or is "localhost").
bool looks_like_registry(std::string_view component);

/// Validates a tag: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
bool valid_tag(std::string_view tag);

/// The tag that stands in for the referrers API on registries without it: "sha256-<hex>" (OCI
/// distribution-spec 1.1, referrers tag schema). cosign's own tags add ".sig", ".att", ".sbom".
std::string referrers_tag(const std::string& digest);

/// Whether a tag is a referrers tag or a cosign tag of some digest ("sha256-<64 hex>[.suffix]").
bool is_referrers_tag(const std::string& tag);

/// Validates a repository path: lower-case components joined by '/', separators ., _, __, -+;
/// at most 255 characters.
bool valid_repository(std::string_view repository);

/// Why `repository` with `reference` (a tag, a digest, or "" for none) cannot be made part of a
/// request or a file name: "" when both follow the distribution grammar. Every name that comes
/// from a registry, a layout or an API server is checked with it before it is used: it is data,
/// never a path ("../../other/manifests/x" as a tag would otherwise reach another repository).
std::string invalid_name(std::string_view repository, std::string_view reference = {});

/// Validates host[:port], including bracketed IPv6.
bool valid_registry(std::string_view host);

/// Whether a Reference::registry names Docker Hub (docker.io, index.docker.io, registry-1.docker.io).
bool is_docker_hub(std::string_view registry);

/// Whether `text` starts with credentials, user[:password]@ before the host (perhaps after a
/// scheme): a reference cannot hold them, and no message may repeat them.
bool has_userinfo(std::string_view text);

/// `text` with such credentials replaced by "<redacted>" (unchanged when it has none).
std::string without_userinfo(std::string_view text);

} // namespace registry
