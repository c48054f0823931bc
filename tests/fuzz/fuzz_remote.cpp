// What a hostile registry, layout or API server can send (issue 17): depth-limited JSON parsing,
// index filtering, log escaping, name and media type checks, and the last check on a request.
// None may crash; escaped text must hold no control byte; a request built from an accepted name
// must pass http::invalid_request.
#include "http/client.hpp"
#include "http/url.hpp"
#include "registry/manifest.hpp"
#include "registry/reference.hpp"
#include "util/json.hpp"
#include "util/text.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto j = util::parse_json(text);
    (void)j.dump(); // recursive: bounded by the parse's depth limit
    nlohmann::json copy = j;
    (void)copy;
  } catch (const nlohmann::json::exception& e) {
    (void)util::parse_error_text(e);
  }
  registry::Manifest index;
  index.bytes = text;
  index.media_type = std::string(registry::media::oci_index);
  (void)registry::filter_index(index, {"linux/amd64"});

  for (unsigned char c : util::escape_control(text))
    if (c < 0x20 || c == 0x7f)
      std::abort();

  // The input as a tag, a digest and a repository: whatever is accepted makes a clean URL.
  const std::string line = text.substr(0, text.find('\0'));
  for (const std::string& reference : {line, std::string("sha256:") + line}) {
    if (!registry::invalid_name("org/app", reference).empty())
      continue;
    http::Request r;
    r.url = "https://r.io/v2/org/app/manifests/" + reference;
    if (!http::invalid_request(r).empty())
      std::abort();
  }
  if (registry::invalid_name(line).empty()) {
    http::Request r;
    r.url = "https://r.io/v2/" + line + "/tags/list";
    if (!http::invalid_request(r).empty())
      std::abort();
  }
  if (registry::valid_media_type(line)) {
    http::Request r;
    r.url = "https://r.io/v2/";
    r.headers.emplace_back("Content-Type", line);
    if (!http::invalid_request(r).empty())
      std::abort();
  }

  // The input as a Location or Link target from a registry: resolved by libcurl's parser, and a
  // redacted URL never shows the query or user information of an absolute one.
  const std::string resolved = http::resolve_url("https://r.io/v2/org/app/blobs/uploads/u?state=s", line);
  http::Url u;
  if (http::parse_url(resolved, u) && (u.scheme != "http" && u.scheme != "https"))
    std::abort();
  if (http::parse_url(line, u)) {
    const std::string redacted = http::redact_url(line);
    if (redacted.find('@') != std::string::npos && u.path.find('@') == std::string::npos &&
        redacted.find('@') < redacted.find('/', redacted.find("://") + 3))
      std::abort(); // user information left in
  }
  (void)http::next_link(line);
  return 0;
}
