#pragma once
// The stores a run talks to: one Registry per registry + auth entry (the same host with two auth
// entries is two Registry objects: two sets of credentials), one Layout per directory however it
// is spelt, one Limiter per registry host (its auth.json caps, shared by every Registry of the
// host), and the tag listings of the run (each repository listed once, for the rules and for
// referrer lookups).

#include "http/client.hpp"
#include "migrate/config.hpp"
#include "migrate/retry.hpp"
#include "registry/limiter.hpp"
#include "registry/reference.hpp"
#include "registry/store.hpp"
#include "util/cancel.hpp"

#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace migrate {

/// The key of the store `ref` uses: "oci:<canonical directory>" for a layout, "<registry>|<auth
/// key>" for a registry with an auth.json entry, "<registry>" without one. Two references with one
/// key share one store (and its connections, tokens and caches).
std::string store_key(const AuthConfig& auth, const registry::Reference& ref);

/// Makes the store of a reference instead of a Registry or Layout (tests: stores in memory); null
/// for the real ones.
using StoreFactory = std::function<std::unique_ptr<registry::ImageStore>(const registry::Reference& ref)>;

class Stores {
public:
  Stores(http::Client& client, const AuthConfig& auth, EnvLookup env, const util::CancelToken* cancel,
         std::shared_ptr<spdlog::logger> log, StoreFactory make = {});
  Stores(const Stores&) = delete;
  Stores& operator=(const Stores&) = delete;

  struct Entry {
    registry::ImageStore* store;
    std::string key;
  };
  /// The store of `ref`, set up on first use (credentials, Docker credential helpers: a broken
  /// configuration throws ConfigError here).
  Entry get(const registry::Reference& ref);

  /// Downloads resumed after a break, over every store.
  std::uint64_t resumed_downloads();

  using TagList = http::Result<std::vector<std::string>>;
  /// The tags of a repository, listed once per run (with retries; a failed listing is asked again
  /// by the next caller).
  TagList tags(const Entry& entry, const std::string& repository, const Retrier& retry);
  /// Whether tags() has the repository's list in hand (it then answers without waiting).
  bool tags_listed(const Entry& entry, const std::string& repository);

  /// Referrer and cosign tags of a repository by the subject they name ("sha256-<hex>" -> those
  /// tags), from its tag list; built once per repository.
  using ReferrerTags = std::shared_ptr<const std::map<std::string, std::vector<std::string>>>;
  http::Result<ReferrerTags> referrer_tags(const Entry& entry, const std::string& repository, const Retrier& retry);

private:
  std::shared_ptr<registry::Limiter> limiter_for(const std::string& host);
  /// Where a registry's adaptive windows start, and the most they grow to without a maxConcurrency:
  /// more than a run ever has in flight to one registry (--workers is at most 64), so that only a
  /// registry's own complaints narrow them.
  static constexpr int adaptive_ceiling = 256;

  http::Client& m_client;
  const AuthConfig& m_auth;
  EnvLookup m_env;
  const util::CancelToken* m_cancel;
  std::shared_ptr<spdlog::logger> m_log;
  StoreFactory m_make;

  std::mutex m_mutex;
  std::map<std::string, std::unique_ptr<registry::ImageStore>> m_stores;
  std::map<std::string, std::shared_ptr<registry::Limiter>> m_limiters; ///< per host

  std::mutex m_tags_mutex;
  std::map<std::string, std::shared_future<TagList>> m_tags;        ///< store key + repository
  std::map<std::string, ReferrerTags> m_referrer_tags;               ///< same keys
};

} // namespace migrate
