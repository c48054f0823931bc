#include "migrate/stores.hpp"

#include "migrate/inputs.hpp"
#include "registry/client.hpp"
#include "registry/layout.hpp"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <system_error>

namespace migrate {

std::string store_key(const AuthConfig& auth, const registry::Reference& ref) {
  if (!ref.layout.empty()) {
    // One store per directory however it is spelt (oci:out, oci:./out): one index.json writer.
    std::error_code ec;
    auto canonical = std::filesystem::weakly_canonical(std::filesystem::absolute(ref.layout), ec);
    return "oci:" + (ec ? ref.layout : canonical.string());
  }
  const AuthEntry* entry = auth.find(ref.registry, ref.repository);
  return entry ? ref.registry + "|" + entry->key : ref.registry;
}

Stores::Stores(http::Client& client, const AuthConfig& auth, EnvLookup env, const util::CancelToken* cancel,
               std::shared_ptr<spdlog::logger> log, StoreFactory make)
    : m_client(client), m_auth(auth), m_env(std::move(env)), m_cancel(cancel), m_log(std::move(log)),
      m_make(std::move(make)) {}

Stores::Entry Stores::get(const registry::Reference& ref) {
  const std::string key = store_key(m_auth, ref);
  {
    std::lock_guard lock(m_mutex);
    if (auto it = m_stores.find(key); it != m_stores.end())
      return {it->second.get(), key};
    if (m_make) {
      auto& slot = m_stores[key];
      slot = m_make(ref);
      return {slot.get(), key};
    }
    if (!ref.layout.empty()) {
      auto& slot = m_stores[key];
      slot = std::make_unique<registry::Layout>(ref.layout);
      return {slot.get(), key};
    }
  }
  // Outside the lock: a Docker credential helper may take seconds.
  auto options = registry_options(m_auth, ref, m_env);
  std::lock_guard lock(m_mutex);
  auto& slot = m_stores[key];
  if (!slot) {
    if (!options.tls.verify)
      m_log->warn("TLS verification is OFF for {} (skipTLSVerify in the auth file)", ref.registry);
    slot = std::make_unique<registry::Registry>(m_client, options, limiter_for(ref.registry), m_log);
  }
  return {slot.get(), key};
}

std::shared_ptr<registry::Limiter> Stores::limiter_for(const std::string& host) {
  if (auto it = m_limiters.find(host); it != m_limiters.end())
    return it->second;
  // A registry's own entry (under any of Docker Hub's names for docker.io), not a namespace's.
  const AuthEntry* e = m_auth.find(host, "");
  if (e && e->key.find('/') != std::string::npos)
    e = nullptr;
  const int cap = e ? e->max_concurrency : 0;
  const double rps = e ? e->rps : 0;
  const bool adaptive = !e || e->adaptive;
  if (cap > 0 || rps > 0)
    m_log->info("{}: at most {} request(s) at once, {} per second{}", host,
                cap > 0 ? std::to_string(cap) : "any number of", rps > 0 ? fmt::format("{:g}", rps) : "any number",
                adaptive ? ", fewer while it answers 429/503" : "");
  std::shared_ptr<registry::Limiter> made;
  if (cap > 0 || rps > 0 || adaptive)
    made = std::make_shared<registry::Limiter>(cap, rps, m_cancel, adaptive, adaptive_ceiling);
  if (made && adaptive)
    made->on_decrease([log = m_log, host](registry::Limiter::Work work, int from, int to, bool slow) {
      log->debug("registry {} {}: at most {} {} at once, down from {} (widened again as answers come back well)", host,
                 slow ? "answered a HEAD far slower than its fastest" : "is overloaded (429, 503 or a timeout)", to,
                 work == registry::Limiter::Work::check ? (to == 1 ? "check" : "checks")
                                                        : (to == 1 ? "blob transfer" : "blob transfers"),
                 from);
    });
  m_limiters.emplace(host, made);
  return made;
}

std::uint64_t Stores::resumed_downloads() {
  std::lock_guard lock(m_mutex);
  std::uint64_t n = 0;
  for (const auto& [key, store] : m_stores)
    if (store)
      n += store->resumed_downloads();
  return n;
}

bool Stores::tags_listed(const Entry& entry, const std::string& repository) {
  std::lock_guard lock(m_tags_mutex);
  auto it = m_tags.find(entry.key + "|" + repository);
  return it != m_tags.end() && it->second.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
}

Stores::TagList Stores::tags(const Entry& entry, const std::string& repository, const Retrier& retry) {
  const std::string k = entry.key + "|" + repository;
  std::promise<TagList> mine;
  std::shared_future<TagList> listing;
  bool owner = false;
  {
    std::lock_guard lock(m_tags_mutex);
    if (auto it = m_tags.find(k); it != m_tags.end()) {
      listing = it->second;
    } else {
      listing = mine.get_future().share();
      m_tags.emplace(k, listing);
      owner = true;
    }
  }
  if (owner) {
    const std::string what = "listing tags of " + entry.store->host() + "/" + repository;
    TagList tags = http::make_error(http::ErrorKind::invalid, what + " failed");
    try {
      tags = retry(what, [&] { return entry.store->list_tags(repository); });
    } catch (const std::exception& e) {
      tags = http::make_error(http::ErrorKind::invalid, what + ": " + e.what());
    }
    if (!tags) {
      std::lock_guard lock(m_tags_mutex);
      m_tags.erase(k); // a later pass may list it again
    }
    mine.set_value(std::move(tags));
  }
  return listing.get();
}

http::Result<Stores::ReferrerTags> Stores::referrer_tags(const Entry& entry, const std::string& repository,
                                                          const Retrier& retry) {
  const std::string k = entry.key + "|" + repository;
  {
    std::lock_guard lock(m_tags_mutex);
    if (auto it = m_referrer_tags.find(k); it != m_referrer_tags.end())
      return it->second;
  }
  auto listed = tags(entry, repository, retry);
  if (!listed)
    return listed.error();
  auto made = std::make_shared<std::map<std::string, std::vector<std::string>>>();
  for (const auto& tag : *listed)
    if (registry::is_referrers_tag(tag))
      (*made)[tag.substr(0, tag.find('.'))].push_back(tag);
  std::lock_guard lock(m_tags_mutex);
  return m_referrer_tags.emplace(k, std::move(made)).first->second;
}

} // namespace migrate
