#include "registry/manifest.hpp"

#include "registry/digest.hpp"
#include "util/json.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace registry {

namespace {

using nlohmann::json;

http::Error invalid(const std::string& why) {
  return http::make_error(http::ErrorKind::invalid, "parsing manifest: " + why);
}

Result<Descriptor> parse_descriptor(const json& j, const std::string& where) {
  if (!j.is_object())
    return invalid(where + " is not an object");
  Descriptor d;
  if (j.contains("mediaType")) {
    if (!j["mediaType"].is_string())
      return invalid(where + ".mediaType is not a string");
    d.media_type = j["mediaType"].get<std::string>();
    if (!valid_media_type(d.media_type))
      return invalid(where + ".mediaType is not a media type (RFC 6838)");
  }
  if (!j.contains("digest") || !j["digest"].is_string())
    return invalid(where + ".digest is missing");
  d.digest = j["digest"].get<std::string>();
  if (!valid_digest(d.digest))
    return invalid(where + ".digest \"" + d.digest + "\" is not a valid digest");
  if (!j.contains("size") || !j["size"].is_number_integer() || j["size"].get<std::int64_t>() < 0)
    return invalid(where + ".size is missing or negative");
  d.size = j["size"].get<std::int64_t>();
  if (j.contains("urls") && j["urls"].is_array())
    for (const auto& u : j["urls"])
      if (u.is_string())
        d.urls.push_back(u.get<std::string>());
  if (j.contains("platform") && j["platform"].is_object()) {
    const auto& p = j["platform"];
    Platform platform;
    platform.os = util::string_field(p, "os");
    platform.architecture = util::string_field(p, "architecture");
    platform.variant = util::string_field(p, "variant");
    d.platform = platform;
  }
  return d;
}


} // namespace

std::string media::accept_header() {
  return std::string(oci_index) + ", " + std::string(docker_list) + ", " + std::string(oci_manifest) + ", " +
         std::string(docker_manifest);
}

std::string Platform::to_string() const {
  std::string s = os + "/" + architecture;
  if (!variant.empty())
    s += "/" + variant;
  return s;
}

bool Descriptor::non_distributable() const {
  return media_type.find(".foreign.") != std::string::npos || media_type.find("nondistributable") != std::string::npos;
}

std::string strip_params(std::string_view content_type) {
  auto semi = content_type.find(';');
  std::string t(content_type.substr(0, semi));
  while (!t.empty() && t.back() == ' ')
    t.pop_back();
  return t;
}

bool valid_media_type(std::string_view media_type) {
  auto restricted_name = [](std::string_view name) {
    auto first = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
    if (name.empty() || name.size() > 127 || !first(name.front()))
      return false;
    return std::all_of(name.begin(), name.end(), [&](char c) {
      return first(c) || c == '!' || c == '#' || c == '$' || c == '&' || c == '-' || c == '^' || c == '_' || c == '.' ||
             c == '+';
    });
  };
  auto slash = media_type.find('/');
  return slash != std::string_view::npos && restricted_name(media_type.substr(0, slash)) &&
         restricted_name(media_type.substr(slash + 1));
}

bool is_index_type(std::string_view media_type) {
  return media_type == media::oci_index || media_type == media::docker_list;
}

bool is_image_manifest_type(std::string_view media_type) {
  return media_type == media::oci_manifest || media_type == media::docker_manifest ||
         media_type == media::docker_schema1 || media_type == media::docker_schema1_signed;
}

namespace {

/// The manifest in `j` (an object); nlohmann's type errors propagate to parse_manifest.
Result<ParsedManifest> parse_object(const json& j, std::string_view content_type) {
  ParsedManifest m;
  std::string type = strip_params(content_type);
  std::string body_type = util::string_field(j, "mediaType");
  if (type.empty() || type == "application/json" || type == "text/plain" || type == "application/octet-stream")
    type = body_type;
  const bool schema1 = j.contains("schemaVersion") && j["schemaVersion"] == 1;
  if (!schema1 && j.contains("schemaVersion") && !(j["schemaVersion"].is_number_integer() && j["schemaVersion"] == 2))
    return invalid("schemaVersion is not 2");
  if (type.empty()) {
    // OCI allows mediaType to be absent: decide by shape.
    if (j.contains("manifests"))
      type = std::string(media::oci_index);
    else if (j.contains("config") && j.contains("layers"))
      type = std::string(media::oci_manifest);
    else if (schema1)
      type = std::string(media::docker_schema1);
  }
  if (!valid_media_type(type))
    return invalid("its media type is not one (RFC 6838)");
  if (type == media::docker_schema1 || type == media::docker_schema1_signed || schema1)
    return http::make_error(http::ErrorKind::unsupported,
                            "Docker schema 1 manifests are not supported (deprecated format; re-push the image "
                            "with a current client to convert it to schema 2)");
  m.media_type = type;
  if (is_index_type(type)) {
    m.is_index = true;
    if (!j.contains("manifests") || !j["manifests"].is_array())
      return invalid("index has no \"manifests\" array");
    for (std::size_t i = 0; i < j["manifests"].size(); ++i) {
      auto d = parse_descriptor(j["manifests"][i], "manifests[" + std::to_string(i) + "]");
      if (!d)
        return d.error();
      m.manifests.push_back(std::move(*d));
    }
  } else if (type == media::oci_manifest || type == media::docker_manifest ||
             (j.contains("config") && j.contains("layers"))) {
    if (!j.contains("config"))
      return invalid("image manifest has no \"config\"");
    auto config = parse_descriptor(j["config"], "config");
    if (!config)
      return config.error();
    m.config = std::move(*config);
    if (j.contains("layers")) {
      if (!j["layers"].is_array())
        return invalid("\"layers\" is not an array");
      for (std::size_t i = 0; i < j["layers"].size(); ++i) {
        auto d = parse_descriptor(j["layers"][i], "layers[" + std::to_string(i) + "]");
        if (!d)
          return d.error();
        m.layers.push_back(std::move(*d));
      }
    }
  } else {
    return http::make_error(http::ErrorKind::unsupported, "unsupported manifest media type \"" + type + "\"");
  }
  if (j.contains("subject")) {
    auto s = parse_descriptor(j["subject"], "subject");
    if (!s)
      return s.error();
    m.subject = std::move(*s);
  }
  return m;
}

} // namespace

Result<ParsedManifest> parse_manifest(std::string_view bytes, std::string_view content_type) {
  json j;
  try {
    j = util::parse_json(bytes);
  } catch (const json::parse_error& e) {
    return invalid("not JSON: " + util::parse_error_text(e));
  } catch (const json::exception&) {
    return invalid("not valid JSON (a number out of range?)"); // found by fuzz_manifest
  }
  if (!j.is_object())
    return invalid("not a JSON object");
  // A field of the wrong type ("schemaVersion": {}) is an invalid manifest, never an exception.
  try {
    return parse_object(j, content_type);
  } catch (const json::exception& e) {
    return invalid(e.what());
  }
}


bool platform_selected(const Platform& platform, const std::vector<std::string>& wanted) {
  std::string full = platform.to_string();
  std::string os_arch = platform.os + "/" + platform.architecture;
  for (const auto& w : wanted)
    if (w == full || w == os_arch)
      return true;
  return false;
}

Result<std::optional<Manifest>> filter_index(const Manifest& index, const std::vector<std::string>& wanted) {
  json j;
  try {
    j = util::parse_json(index.bytes);
  } catch (const json::exception& e) {
    return invalid("index is not JSON: " + util::parse_error_text(e));
  }
  if (!j.is_object() || !j.contains("manifests") || !j["manifests"].is_array())
    return invalid("index has no \"manifests\" array");
  json kept = json::array();
  for (const auto& m : j["manifests"]) {
    auto d = parse_descriptor(m, "manifests[]");
    if (!d)
      return d.error();
    if (d->platform && platform_selected(*d->platform, wanted))
      kept.push_back(m);
  }
  if (kept.size() == j["manifests"].size())
    return std::optional<Manifest>();
  if (kept.empty())
    return http::make_error(http::ErrorKind::invalid, "no platform of the index matches --platforms");
  j["manifests"] = kept;
  Manifest out;
  out.media_type = index.media_type;
  out.bytes = j.dump();
  out.digest = sha256_digest(out.bytes);
  return std::optional<Manifest>(std::move(out));
}

} // namespace registry
