#pragma once
// Manifests as plain structs for reading; the raw bytes are what we hash and push, never a
// re-serialisation, so digests survive the copy byte for byte.

#include "http/result.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace registry {

using http::Result;

namespace media {
inline constexpr std::string_view oci_manifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view oci_index = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view docker_manifest = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view docker_list = "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view docker_schema1 = "application/vnd.docker.distribution.manifest.v1+json";
inline constexpr std::string_view docker_schema1_signed = "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// The Accept header for manifest requests: every type we can copy.
std::string accept_header();
} // namespace media

struct Platform {
  std::string os;
  std::string architecture;
  std::string variant;
  std::string to_string() const; ///< "linux/arm64/v8"
};

struct Descriptor {
  std::string media_type;
  std::string digest;
  std::int64_t size = 0;
  std::vector<std::string> urls;
  std::optional<Platform> platform;

  /// Foreign/non-distributable layers are referenced, never uploaded.
  bool non_distributable() const;
};

/// The raw bytes of a manifest as served, with what they are.
struct Manifest {
  std::string media_type; ///< from Content-Type, or the body's mediaType
  std::string bytes;
  std::string digest; ///< sha256 of bytes
};

struct ParsedManifest {
  bool is_index = false;
  std::string media_type;
  std::optional<Descriptor> config;     ///< image manifests
  std::vector<Descriptor> layers;       ///< image manifests
  std::vector<Descriptor> manifests;    ///< indexes / manifest lists
  std::optional<Descriptor> subject;
};

/// A Content-Type without its parameters ("application/json; charset=utf-8" -> "application/json").
std::string strip_params(std::string_view content_type);

/// Whether `media_type` follows RFC 6838 (type/subtype, restricted names, no parameters): only such
/// a type goes into a Content-Type header; one from a registry or a layout is checked with it.
bool valid_media_type(std::string_view media_type);

/// Whether a media type is an index (OCI index or Docker manifest list).
bool is_index_type(std::string_view media_type);
/// Whether a media type is known to be a single image's manifest (OCI, Docker schema 2 or 1): not an
/// index. An empty or generic type ("application/json") is neither: read the manifest to know.
bool is_image_manifest_type(std::string_view media_type);

/// Whether `platform` is selected by one of `wanted` ("os/arch" matches every variant; "os/arch/variant"
/// only that one).
bool platform_selected(const Platform& platform, const std::vector<std::string>& wanted);

/// An index keeping only the children of the `wanted` platforms (new bytes, so a new digest), or
/// nullopt when the index has no other platform (the original is kept byte for byte). An error when
/// no child is selected.
Result<std::optional<Manifest>> filter_index(const Manifest& index, const std::vector<std::string>& wanted);

/// Parses manifest bytes; `content_type` wins over the body's mediaType when set. Schema 1 and
/// unknown types are errors (unsupported) with a message naming the type.
Result<ParsedManifest> parse_manifest(std::string_view bytes, std::string_view content_type);

} // namespace registry
