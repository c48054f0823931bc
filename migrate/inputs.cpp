#include "migrate/inputs.hpp"

#include "migrate/docker_config.hpp"
#include "migrate/secrets.hpp"
#include "migrate/stores.hpp"

#include <filesystem>
#include <memory>
#include <optional>

namespace migrate {

namespace {
Decryptor user_key_decryptor(const EnvLookup& env) {
  auto key = std::make_shared<std::optional<SecretKey>>();
  return [key, env](const std::string& value) -> http::Result<std::string> {
    if (!*key)
      *key = SecretKey::load(false, env);
    if (!*key)
      return http::make_error(http::ErrorKind::invalid, no_key_message());
    return (*key)->decrypt(value);
  };
}
} // namespace

AuthConfig load_auth(const std::string& path, bool given, const EnvLookup& env) {
  nlohmann::json doc;
  if (given || std::filesystem::exists(path))
    doc = load_document(path);
  return AuthConfig::from_json(doc, path, env, user_key_decryptor(env));
}

registry::RegistryOptions registry_options(const AuthConfig& auth, const registry::Reference& ref, const EnvLookup& env,
                                           std::string& key) {
  key = store_key(auth, ref);
  return registry_options(auth, ref, env);
}

registry::RegistryOptions registry_options(const AuthConfig& auth, const registry::Reference& ref, const EnvLookup& env) {
  const AuthEntry* entry = auth.find(ref.registry, ref.repository);
  registry::RegistryOptions ro;
  ro.host = ref.registry;
  if (entry) {
    ro.credentials = entry->credentials;
    ro.insecure = entry->insecure;
    ro.tls = entry->tls;
    ro.chunked_upload = entry->chunked_upload;
    ro.proxy = entry->proxy;
    ro.address = entry->address;
  }
  // Entries per page of tag and catalog listings: for tests, and for registries that cap pages lower.
  if (auto n = util::env_value(env, "IMAGE_MIGRATOR_TAG_PAGE_SIZE");
      n && !n->empty() && n->size() <= 6 && n->find_first_not_of("0123456789") == std::string::npos && *n != "0")
    ro.page_size = *n;
  if (ro.credentials.anonymous())
    if (auto dc = docker_credentials(ref.registry, env)) // what docker/skopeo/crane already use
      ro.credentials = *dc;
  return ro;
}

Inputs load_inputs(const InputOptions& o, const EnvLookup& env) {
  Inputs in;
  nlohmann::json images_doc;
  in.images_name = o.images;
  if (!o.config.empty()) {
    if (o.auth_given || o.images_given)
      throw ConfigError(std::string("--config ") + o.config + " holds both the auth and the images: give it, or " +
                        "--auth and --images, not both");
    auto doc = load_document(o.config);
    if (!doc.is_object())
      throw ConfigError(o.config + ": must be an object with \"auth\" and \"images\"");
    for (const auto& item : doc.items())
      if (item.key() != "auth" && item.key() != "images")
        throw ConfigError(o.config + ": unknown key \"" + item.key() + "\" (known: auth, images)");
    images_doc = doc.contains("images") ? doc["images"] : nlohmann::json();
    if (images_doc.is_null())
      throw ConfigError(o.config + ": has no \"images\" section");
    in.auth = AuthConfig::from_json(doc.value("auth", nlohmann::json()), o.config + ": auth", env, user_key_decryptor(env));
    in.images_name = o.config + ": images";
  } else {
    in.auth = load_auth(o.auth, o.auth_given, env);
    images_doc = load_document(o.images);
    // An image-syncer config given as the images file would read as two broken rules.
    if (images_doc.is_object() && images_doc.size() == 2 && images_doc.contains("auth") && images_doc.contains("images") &&
        images_doc["images"].is_object() && !images_doc["images"].contains("destination") &&
        !images_doc["images"].contains("tags"))
      throw ConfigError(o.images + ": holds \"auth\" and \"images\" sections: that is a --config file, not an images file");
  }
  in.rules = read_rules(images_doc, in.images_name, in.rule_errors);
  if (o.encrypt_auth && o.config.empty() && std::filesystem::exists(o.auth))
    in.notice = protect_auth_file(o.auth, env);
  return in;
}

} // namespace migrate
