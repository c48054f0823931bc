#include "migrate/secrets.hpp"

#include "http/base64.hpp"
#include "http/url.hpp"
#include "migrate/config.hpp"
#include "migrate/user_dirs.hpp"
#include "util/file.hpp"
#include "util/json.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace migrate {

namespace {

namespace fs = std::filesystem;
constexpr std::size_t key_size = 32, nonce_size = 12, tag_size = 16;

struct CipherCtx {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  ~CipherCtx() { EVP_CIPHER_CTX_free(ctx); }
};

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1)
    throw ConfigError("OpenSSL: no randomness available");
  return out;
}

/// The key file under $XDG_CONFIG_HOME or $HOME/.config; empty without either.
fs::path key_file(const util::EnvLookup& env) {
  fs::path dir = user_dir(env, "XDG_CONFIG_HOME", ".config");
  return dir.empty() ? dir : dir / "key";
}

} // namespace

bool is_encrypted(std::string_view value) { return value.substr(0, encrypted_prefix.size()) == encrypted_prefix; }

SecretKey SecretKey::from_bytes(std::string bytes) {
  SecretKey k;
  k.m_key = std::move(bytes);
  k.m_origin = "test key";
  return k;
}

std::optional<SecretKey> SecretKey::load(bool create, const util::EnvLookup& env) {
  SecretKey k;
  if (std::string text = util::env_or_empty(env, "IMAGE_MIGRATOR_KEY"); !text.empty()) {
    // Trimmed: the key file's text (with its newline) may come in whole, e.g. from a Kubernetes
    // Secret key given as an environment variable.
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
      text.pop_back();
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
      text.erase(0, 1);
    auto bytes = http::base64_decode(text);
    if (!bytes || bytes->size() != key_size)
      throw ConfigError("IMAGE_MIGRATOR_KEY must be the base64 encoding of 32 bytes (e.g. `openssl rand -base64 32`)");
    k.m_key = *bytes;
    k.m_origin = "IMAGE_MIGRATOR_KEY";
    return k;
  }
  fs::path path = key_file(env);
  if (path.empty())
    return std::nullopt; // no home for a key: secrets stay as they are (protect_auth_file says so)
  k.m_origin = path.string();
  std::error_code ec;
  if (fs::exists(fs::symlink_status(path, ec))) {
    // Only a key nobody else could have written or read: a regular file of ours (no symlink), no
    // permission for group or others. A key planted in a shared directory would be known to its
    // planter, and so would every password encrypted with it.
    std::string why;
    const int fd = util::open_regular_file(path.string(), why);
    struct stat st {};
    const bool mine = fd >= 0 && ::fstat(fd, &st) == 0 && st.st_uid == ::geteuid() && (st.st_mode & 077) == 0;
    std::string text;
    char buffer[256];
    for (ssize_t n; mine && (n = ::read(fd, buffer, sizeof buffer)) > 0 && text.size() < 1024;)
      text.append(buffer, static_cast<std::size_t>(n));
    if (fd >= 0)
      ::close(fd);
    if (!mine)
      throw ConfigError(path.string() + ": not used as the key: " +
                        (why.empty() ? "it must be a file of yours with mode 0600 (another user could know it)" : why));
    auto bytes = http::base64_decode(text);
    if (!bytes || bytes->size() != key_size)
      throw ConfigError(path.string() + ": not a valid key (base64 of 32 bytes)");
    k.m_key = *bytes;
    return k;
  }
  if (!create)
    return std::nullopt;
  if (util::make_private_directories(path.parent_path().string()) != 0)
    return std::nullopt; // no place for a key (read-only home): leave secrets as they are
  k.m_key = random_bytes(key_size);
  util::AtomicFile file(path.string(), 0600);
  // Linked into place only when absent: if another process created the key meanwhile, theirs
  // wins, and we use it.
  if (file.write(http::base64_encode(k.m_key) + "\n") && file.commit(false))
    return k;
  return file.exists() ? load(false, env) : std::nullopt;
}

std::string SecretKey::encrypt(std::string_view plaintext) const {
  std::string nonce = random_bytes(nonce_size);
  std::string out(plaintext.size(), '\0');
  unsigned char tag[tag_size];
  CipherCtx c;
  int len = 0;
  auto u = [](const std::string& s) { return reinterpret_cast<const unsigned char*>(s.data()); };
  if (EVP_EncryptInit_ex(c.ctx, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_SET_IVLEN, nonce_size, nullptr) != 1 ||
      EVP_EncryptInit_ex(c.ctx, nullptr, nullptr, u(m_key), u(nonce)) != 1 ||
      EVP_EncryptUpdate(c.ctx, reinterpret_cast<unsigned char*>(out.data()), &len,
                        reinterpret_cast<const unsigned char*>(plaintext.data()), static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(c.ctx, nullptr, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_GET_TAG, tag_size, tag) != 1)
    throw ConfigError("OpenSSL: AES-256-GCM encryption failed");
  return std::string(encrypted_prefix) + http::base64_encode(nonce + out + std::string(reinterpret_cast<char*>(tag), tag_size));
}

http::Result<std::string> SecretKey::decrypt(std::string_view value) const {
  auto fail = [&](const std::string& why) { return http::make_error(http::ErrorKind::invalid, why); };
  if (!is_encrypted(value))
    return fail("not an encrypted value");
  auto raw = http::base64_decode(value.substr(encrypted_prefix.size()));
  if (!raw || raw->size() < nonce_size + tag_size)
    return fail("the encrypted value is damaged");
  std::string nonce = raw->substr(0, nonce_size);
  std::string tag = raw->substr(raw->size() - tag_size);
  std::string cipher = raw->substr(nonce_size, raw->size() - nonce_size - tag_size);
  std::string out(cipher.size(), '\0');
  CipherCtx c;
  int len = 0;
  auto u = [](const std::string& s) { return reinterpret_cast<const unsigned char*>(s.data()); };
  if (EVP_DecryptInit_ex(c.ctx, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_SET_IVLEN, nonce_size, nullptr) != 1 ||
      EVP_DecryptInit_ex(c.ctx, nullptr, nullptr, u(m_key), u(nonce)) != 1 ||
      EVP_DecryptUpdate(c.ctx, reinterpret_cast<unsigned char*>(out.data()), &len, u(cipher), static_cast<int>(cipher.size())) != 1 ||
      EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_SET_TAG, tag_size, const_cast<char*>(tag.data())) != 1 ||
      EVP_DecryptFinal_ex(c.ctx, nullptr, &len) != 1)
    return fail("cannot decrypt with the key from " + m_origin +
                " (encrypted with another key, or altered); replace the value with the plaintext password");
  return out;
}

int encrypt_auth_document(nlohmann::ordered_json& doc, const SecretKey& key) {
  int n = 0;
  if (!doc.is_object())
    return 0;
  for (auto& [registry, entry] : doc.items()) {
    if (!entry.is_object())
      continue;
    for (const char* field : {"password", "identitytoken", "proxy"}) {
      if (!entry.contains(field) || !entry[field].is_string())
        continue;
      std::string v = entry[field].get<std::string>();
      if (v.empty() || is_encrypted(v) || env_reference(v))
        continue;
      if (std::string(field) == "proxy" && !http::url_password(v))
        continue; // a proxy URL without a password holds no secret
      entry[field] = key.encrypt(literal_value(v)); // what it means, "$$x" being "$x": decrypted, it is used as is
      ++n;
    }
  }
  return n;
}

std::string no_key_message() {
  return "encrypted by an earlier run where a key was at hand, but there is no key here (IMAGE_MIGRATOR_KEY or "
         "$XDG_CONFIG_HOME/image-migrator/key): where it was encrypted, `image-migrator auth export --auth FILE` "
         "prints it in plaintext, e.g. for a Kubernetes Secret (docs/KUBERNETES.md); or give that machine's key "
         "as IMAGE_MIGRATOR_KEY";
}

nlohmann::ordered_json decrypt_auth_document(const nlohmann::ordered_json& doc, const std::string& file,
                                             const std::optional<SecretKey>& key, const EnvLookup* env,
                                             std::vector<std::string>& notes) {
  if (!doc.is_object())
    throw ConfigError(file + ": must be an object mapping registry[/namespace] to credentials");
  nlohmann::ordered_json out = doc;
  for (auto& [registry, entry] : out.items()) {
    if (!entry.is_object())
      continue;
    std::string where = file + ": key \"" + registry + "\"";
    for (auto& [field, value] : entry.items()) {
      if (!value.is_string())
        continue;
      std::string v = value.get<std::string>();
      if (is_encrypted(v)) {
        if (!key)
          throw ConfigError(where + "." + field + ": " + no_key_message());
        auto plain = key->decrypt(v);
        if (!plain)
          throw ConfigError(where + "." + field + ": " + plain.error().message);
        // Written back as a literal: a password that starts with '$' keeps its escape.
        value = !plain->empty() && plain->front() == '$' ? "$" + *plain : *plain;
      } else if (auto name = env_reference(v)) {
        if (env)
          value = expand_env(v, where + "." + field, *env, field == "password" || field == "identitytoken" ||
                                                                 field == "proxy");
        else
          notes.push_back(where + "." + field + " refers to $" + *name +
                          ": the other place must set it (or export with --expand-env)");
      }
      if ((field == "ca" || field == "cert" || field == "key") && !value.get<std::string>().empty())
        notes.push_back(where + "." + field + " is the file " + value.get<std::string>() +
                        ": the other place needs it at that path (in a pod: a volume mounted there)");
    }
  }
  return out;
}

std::string protect_auth_file(const std::string& path, const util::EnvLookup& env) {
  if (path.size() >= 5 && (path.ends_with(".yaml") || path.ends_with(".yml")))
    return ""; // rewriting YAML would lose comments and layout: use $VAR references there
  if (::access(path.c_str(), W_OK) != 0)
    return ""; // read-only (e.g. a mounted Secret): leave it alone
  fs::path dir = fs::path(path).has_parent_path() ? fs::path(path).parent_path() : fs::path(".");
  if (::access(dir.c_str(), W_OK) != 0)
    return "";
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::ordered_json doc;
  try {
    doc = util::parse_json<nlohmann::ordered_json>(ss.str());
  } catch (const nlohmann::json::exception&) {
    return ""; // not JSON (the loader already accepted it as YAML)
  }
  // Count first: no key file is created unless there is something to protect.
  nlohmann::ordered_json probe = doc;
  if (encrypt_auth_document(probe, SecretKey::from_bytes(std::string(key_size, '\0'))) == 0)
    return "";
  auto key = SecretKey::load(true, env);
  if (!key)
    return "plaintext secret(s) left in " + path + ": no place for a key (HOME, XDG_CONFIG_HOME or IMAGE_MIGRATOR_KEY)";
  int n = encrypt_auth_document(doc, *key);
  write_file_atomically(path, doc.dump(2) + "\n", 0600); // the user's key order kept
  return "encrypted " + std::to_string(n) + " plaintext secret(s) in " + path + " with the key from " + key->origin() +
         " (--no-encrypt-auth to keep plaintext)";
}

} // namespace migrate
