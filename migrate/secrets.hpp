#pragma once
// Passwords at rest in auth.json: after the first run, plaintext passwords are replaced in place by
// "enc:v1:" + base64(nonce | AES-256-GCM ciphertext | tag) under a per-user key. This protects the
// file against casual reading (a copied file, a screen share, a backup), not against root or the same
// user on the same machine, who can read the key too.

#include "http/result.hpp"
#include "migrate/config.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace migrate {

inline constexpr std::string_view encrypted_prefix = "enc:v1:";

/// A 32-byte key. From IMAGE_MIGRATOR_KEY (base64 of 32 bytes), else the key file
/// $XDG_CONFIG_HOME/image-migrator/key (default ~/.config/image-migrator/key, mode 0600).
class SecretKey {
public:
  /// Loads the key; creates the key file when `create` is set and none exists. nullopt when there is
  /// no key and none may be created. Throws ConfigError for a malformed key.
  static std::optional<SecretKey> load(bool create, const util::EnvLookup& env);
  /// A key from raw bytes (tests).
  static SecretKey from_bytes(std::string bytes);

  std::string encrypt(std::string_view plaintext) const;
  /// Decrypts an "enc:v1:" value; an error when the key is wrong or the value was altered.
  http::Result<std::string> decrypt(std::string_view value) const;

  /// Where the key lives (for messages): "IMAGE_MIGRATOR_KEY" or the file path.
  const std::string& origin() const { return m_origin; }

private:
  std::string m_key;
  std::string m_origin;
};

/// Whether a value is an encrypted secret.
bool is_encrypted(std::string_view value);

/// Replaces plaintext "password" and "identitytoken" values of an auth document (not $VAR
/// references, not already encrypted) by ciphertext; returns how many it replaced.
int encrypt_auth_document(nlohmann::ordered_json& doc, const SecretKey& key);

/// The auth document with every "enc:v1:" value decrypted by `key`, for a place that has no key (a
/// Kubernetes Secret: `image-migrator auth export`). `$VAR` references stay as written unless `env`
/// is given (then they are expanded, as a run would). `notes` gets a line for each thing the other
/// place must still provide: a variable left as a reference, a certificate file named by path.
/// ConfigError (naming the file and key) for an encrypted value without a key or one that does not
/// decrypt.
nlohmann::ordered_json decrypt_auth_document(const nlohmann::ordered_json& doc, const std::string& file,
                                             const std::optional<SecretKey>& key, const EnvLookup* env,
                                             std::vector<std::string>& notes);

/// What an encrypted value without a key means, and the way out: said wherever that happens (a run
/// on another machine or in a pod).
std::string no_key_message();

/// If the auth file is a writable JSON file holding plaintext secrets, rewrites it atomically with
/// the secrets encrypted (mode 0600). Returns a one-line notice for the log, or "" when nothing was
/// done. Read-only files (a mounted Kubernetes Secret) are left untouched.
std::string protect_auth_file(const std::string& path, const util::EnvLookup& env);

} // namespace migrate
