#include "migrate/inputs.hpp"

#include "migrate/secrets.hpp"

#include <filesystem>
#include <optional>

namespace migrate {

Inputs load_inputs(const InputOptions& o, const EnvLookup& env) {
  Inputs in;
  nlohmann::json auth_doc, images_doc;
  std::string auth_name = o.auth;
  in.images_name = o.images;
  if (!o.config.empty()) {
    auto doc = load_document(o.config);
    if (!doc.is_object())
      throw ConfigError(o.config + ": must be an object with \"auth\" and \"images\"");
    auth_doc = doc.value("auth", nlohmann::json());
    images_doc = doc.contains("images") ? doc["images"] : nlohmann::json();
    if (images_doc.is_null())
      throw ConfigError(o.config + ": has no \"images\" section");
    auth_name = o.config + ": auth";
    in.images_name = o.config + ": images";
  } else {
    if (o.auth_given || std::filesystem::exists(o.auth))
      auth_doc = load_document(o.auth);
    images_doc = load_document(o.images);
  }
  std::optional<SecretKey> key;
  auto decrypt = [&](const std::string& value) -> http::Result<std::string> {
    if (!key)
      key = SecretKey::load(false);
    if (!key)
      return http::make_error(http::ErrorKind::invalid, "encrypted, but there is no key (IMAGE_MIGRATOR_KEY or the key file)");
    return key->decrypt(value);
  };
  in.auth = AuthConfig::from_json(auth_doc, auth_name, env, decrypt);
  in.rules = read_rules(images_doc, in.images_name, in.rule_errors);
  if (o.encrypt_auth && o.config.empty() && std::filesystem::exists(o.auth))
    in.notice = protect_auth_file(o.auth);
  return in;
}

} // namespace migrate
