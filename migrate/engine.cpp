#include "migrate/engine.hpp"

#include "migrate/inputs.hpp"
#include "migrate/tag_digests.hpp"
#include "registry/client.hpp"
#include "registry/digest.hpp"
#include "registry/layout.hpp"
#include "registry/manifest.hpp"
#include "util/json.hpp"

#include <spdlog/fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <system_error>
#include <thread>

namespace migrate {

namespace {

using registry::BlobOutcome;
using registry::Descriptor;
using registry::ImageStore;
using registry::Registry;
using Clock = std::chrono::steady_clock;

/// Up to `threads` threads draining one queue, started as work arrives (a no-op run never starts
/// the blob threads). Joined on destruction: no detached threads.
class ThreadPool {
public:
  explicit ThreadPool(int threads) : m_max(static_cast<std::size_t>(std::max(1, threads))) {}
  ~ThreadPool() {
    {
      std::lock_guard lock(m_mutex);
      m_stop = true;
    }
    m_cv.notify_all();
    for (auto& t : m_threads)
      t.join();
  }
  template <class F> auto submit(F f) -> std::future<decltype(f())> {
    auto task = std::make_shared<std::packaged_task<decltype(f())()>>(std::move(f));
    auto future = task->get_future();
    bool inline_run = false;
    {
      std::lock_guard lock(m_mutex);
      if (m_idle <= m_queue.size() && m_threads.size() < m_max) {
        try {
          m_threads.emplace_back([this] { loop(); });
        } catch (const std::system_error&) {
          // No thread to be had (a pod's pids limit): the threads there are take the job, and
          // with none, the caller runs it itself.
          inline_run = m_threads.empty();
        }
      }
      if (!inline_run)
        m_queue.emplace_back([task] { (*task)(); });
    }
    if (inline_run)
      (*task)();
    else
      m_cv.notify_one();
    return future;
  }

private:
  void loop() {
    std::unique_lock lock(m_mutex);
    while (true) {
      ++m_idle;
      m_cv.wait(lock, [&] { return m_stop || !m_queue.empty(); });
      --m_idle;
      if (m_queue.empty())
        return;
      auto job = std::move(m_queue.front());
      m_queue.pop_front();
      lock.unlock();
      job();
      lock.lock();
    }
  }
  const std::size_t m_max;
  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::deque<std::function<void()>> m_queue;
  std::vector<std::thread> m_threads;
  std::size_t m_idle = 0; ///< threads waiting for a job
  bool m_stop = false;
};

/// Answers to the HEADs of one task that were sent ahead, in a batch: nullopt = not asked or not
/// settled (copy_one then asks itself, with retries); inside, nullopt = absent.
struct KnownHeads {
  std::optional<std::optional<registry::ManifestHead>> source, destination;
  std::optional<http::Error> source_failed, destination_failed; ///< unsettled: the first try's error (a try counts)
  std::chrono::steady_clock::time_point answered{}; ///< when the last answer came
  /// Answers older than this when the image's turn comes are asked again: a tag may have moved.
  static constexpr std::chrono::seconds fresh{5};
};

struct BlobStat {
  BlobOutcome outcome = BlobOutcome::copied;
  std::uint64_t bytes = 0;
};

std::string ref_text(const std::string& repository, const std::string& reference) {
  return repository + (reference.find(':') != std::string::npos ? "@" : ":") + reference;
}

} // namespace

struct Engine::Impl {
  http::Client& client;
  AuthConfig auth;
  EngineOptions options;
  std::shared_ptr<spdlog::logger> log;

  std::mutex registries_mutex;
  std::map<std::string, std::unique_ptr<ImageStore>> registries;

  std::mutex blobs_mutex;
  std::map<std::string, std::shared_future<void>> in_flight;  ///< dst registry + digest
  std::map<std::string, std::string> known_location;          ///< dst registry + digest -> repository
  std::set<std::string> present;                              ///< dst registry + repository + digest seen present

  std::map<std::string, std::unique_ptr<std::mutex>> tag_writers; ///< referrers tags being rewritten; under blobs_mutex

  using TagList = http::Result<std::vector<std::string>>;
  std::mutex tags_mutex;
  std::map<std::string, std::shared_future<TagList>> tag_cache; ///< registry key + repository
  std::map<std::string, std::shared_ptr<const std::map<std::string, std::vector<std::string>>>> referrer_index; ///< same keys

  std::unique_ptr<ThreadPool> blob_pool;
  std::unique_ptr<ThreadPool> head_pool; ///< destination HEADs, beside the source HEAD of the same image
  std::unique_ptr<ThreadPool> token_pool; ///< pull tokens fetched ahead (warm_tokens)
  std::vector<registry::Reference> endpoints; ///< every rule's repositories, from prepare()
  std::mutex warm_mutex;
  std::set<std::string> warmed;      ///< registries whose tokens warm_tokens has asked for
  std::set<std::string> warm_failed; ///< registries whose token server failed a fetch ahead: no more
  std::atomic<bool> warm_stop{false}; ///< the run is over: fetches ahead not started are dropped
  Progress progress;
  std::mutex planned_mutex;
  std::set<std::string> planned_blobs; ///< dry run: dst registry + digest already counted

  Impl(http::Client& c, AuthConfig a, EngineOptions o, std::shared_ptr<spdlog::logger> l)
      : client(c), auth(std::move(a)), options(o), log(l ? std::move(l) : registry::null_logger()) {}

  bool cancelled() const { return options.cancel && options.cancel->load(); }

  /// The store of a repository: a Registry per auth entry (or per host without one), a Layout per directory.
  std::pair<ImageStore*, std::string> registry_for(const registry::Reference& ref) {
    std::string key;
    {
      std::lock_guard lock(registries_mutex);
      if (!ref.layout.empty()) {
        // One store per directory however it is spelt (oci:out, oci:./out): one index.json writer.
        std::error_code ec;
        auto canonical = std::filesystem::weakly_canonical(std::filesystem::absolute(ref.layout), ec);
        key = "oci:" + (ec ? ref.layout : canonical.string());
        auto& slot = registries[key];
        if (!slot)
          slot = std::make_unique<registry::Layout>(ref.layout);
        return {slot.get(), key};
      }
      const AuthEntry* entry = auth.find(ref.registry, ref.repository);
      key = entry ? ref.registry + "|" + entry->key : ref.registry;
      if (auto it = registries.find(key); it != registries.end())
        return {it->second.get(), key};
    }
    // Outside the lock: a Docker credential helper may take seconds.
    auto ro = registry_options(auth, ref, key);
    std::lock_guard lock(registries_mutex);
    ro.limiter = limiter_for(ref.registry);
    auto& slot = registries[key];
    if (!slot) {
      if (!ro.tls.verify)
        log->warn("TLS verification is OFF for {} (skipTLSVerify in the auth file)", ref.registry);
      slot = std::make_unique<Registry>(client, ro, log);
    }
    return {slot.get(), key};
  }

  std::map<std::string, std::shared_ptr<registry::Limiter>> limiters; ///< per host; under registries_mutex

  /// The caps of a registry host (its auth.json entry's maxConcurrency and rps), shared by all its Registry objects.
  std::shared_ptr<registry::Limiter> limiter_for(const std::string& host) {
    auto it = limiters.find(host);
    if (it != limiters.end())
      return it->second;
    std::shared_ptr<registry::Limiter> made;
    // A registry's own entry (under any of Docker Hub's names for docker.io), not a namespace's.
    if (const AuthEntry* e = auth.find(host, ""); e && e->key.find('/') == std::string::npos &&
                                                  (e->max_concurrency > 0 || e->rps > 0)) {
      made = std::make_shared<registry::Limiter>(e->max_concurrency, e->rps, options.cancel);
      log->info("{}: at most {} request(s) at once, {} per second", host,
                e->max_concurrency > 0 ? std::to_string(e->max_concurrency) : "any number of",
                e->rps > 0 ? fmt::format("{:g}", e->rps) : "any number");
    }
    limiters.emplace(host, made);
    return made;
  }

  /// Runs f until it succeeds, fails for good, or runs out of attempts; backs off in between.
  /// `first`: the error of a first attempt already made (a HEAD sent with others), waited for and
  /// counted like any other.
  template <class F>
  auto retry(const std::string& what, F&& f, const http::Error* first = nullptr) -> decltype(f()) {
    for (int attempt = 1;; ++attempt) {
      auto r = attempt == 1 && first ? decltype(f())(*first) : f();
      if (r || !r.error().retryable() || attempt >= options.attempts || cancelled())
        return r;
      auto delay = options.backoff * (1 << (attempt - 1));
      if (r.error().retry_after.count() > 0)
        delay = std::min<std::chrono::milliseconds>(r.error().retry_after, std::chrono::minutes(2));
      static thread_local std::mt19937 rng(std::random_device{}());
      delay += std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 100)(rng));
      log->warn("{}: {} (attempt {}/{}, retrying in {} ms)", what, r.error().message, attempt, options.attempts,
                delay.count());
      auto until = Clock::now() + delay;
      while (Clock::now() < until && !cancelled())
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  /// One in-flight operation per key: the first caller owns it, later ones wait for it to end.
  class Flight {
  public:
    Flight(Impl& impl, std::string key) : m_impl(impl), m_key(std::move(key)) {
      std::lock_guard lock(m_impl.blobs_mutex);
      auto it = m_impl.in_flight.find(m_key);
      if (it == m_impl.in_flight.end())
        m_impl.in_flight.emplace(m_key, m_mine.get_future().share());
      else
        m_other = it->second;
    }
    ~Flight() {
      if (m_other.valid())
        return;
      std::lock_guard lock(m_impl.blobs_mutex);
      m_impl.in_flight.erase(m_key);
      m_mine.set_value();
    }
    /// Waits for the owner, if someone else owns it; true when it did wait.
    bool wait_for_owner() {
      if (!m_other.valid())
        return false;
      m_other.wait();
      return true;
    }

  private:
    Impl& m_impl;
    std::string m_key;
    std::promise<void> m_mine;
    std::shared_future<void> m_other;
  };

  bool known_present(const std::string& repo_key) {
    std::lock_guard lock(blobs_mutex);
    return present.count(repo_key) > 0;
  }

  http::Result<BlobStat> ensure_blob(ImageStore& src, const std::string& src_repo, ImageStore& dst,
                                     const std::string& dst_key, const std::string& dst_repo, const Descriptor& blob) {
    if (blob.non_distributable())
      return BlobStat{BlobOutcome::skipped_foreign, 0};
    // Per repository: one operation per blob at a time. Concurrent mounts of one blob into one
    // repository race inside docker-registry (a manifest PUT meanwhile may find the link missing).
    const std::string repo_key = dst_key + "|" + dst_repo + "|" + blob.digest;
    if (known_present(repo_key))
      return BlobStat{BlobOutcome::existed, 0};
    Flight repo_flight(*this, repo_key);
    if (repo_flight.wait_for_owner() && known_present(repo_key))
      return BlobStat{BlobOutcome::existed, 0};
    // Per registry: the bytes travel once; others then mount.
    Flight registry_flight(*this, dst_key + "|" + blob.digest);
    registry_flight.wait_for_owner();
    return ensure_blob_once(src, src_repo, dst, dst_key + "|" + blob.digest, dst_repo, blob);
  }

  http::Result<BlobStat> ensure_blob_once(ImageStore& src, const std::string& src_repo, ImageStore& dst,
                                          const std::string& key, const std::string& dst_repo, const Descriptor& blob) {
    std::string what = "blob " + blob.digest.substr(0, 19) + " -> " + dst.host() + "/" + dst_repo;
    auto exists = retry(what, [&] { return dst.blob_exists(dst_repo, blob.digest); });
    if (!exists)
      return exists.error();
    if (*exists) {
      remember(key, dst_repo);
      return BlobStat{BlobOutcome::existed, 0};
    }
    std::string from;
    {
      std::lock_guard lock(blobs_mutex);
      if (auto it = known_location.find(key); it != known_location.end() && it->second != dst_repo)
        from = it->second;
    }
    if (from.empty() && src.host() == dst.host() && src_repo != dst_repo)
      from = src_repo; // a copy inside one registry never needs the bytes to travel

    if (!from.empty()) {
      auto mounted = retry(what, [&] { return dst.mount_blob(dst_repo, blob.digest, from); });
      if (mounted && *mounted) {
        remember(key, dst_repo);
        return BlobStat{BlobOutcome::mounted, 0};
      }
    }
    auto copied = retry(what, [&] {
      return dst.copy_blob_from(src, src_repo, dst_repo, blob, [this](std::size_t n) { progress.bytes += n; });
    });
    if (!copied)
      return copied.error();
    remember(key, dst_repo);
    return BlobStat{BlobOutcome::copied, *copied};
  }

  void remember(const std::string& key, const std::string& repo) {
    std::lock_guard lock(blobs_mutex);
    known_location.insert_or_assign(key, repo);
    auto bar = key.rfind('|');
    present.insert(key.substr(0, bar) + "|" + repo + key.substr(bar)); // dst_key|repo|digest
  }

  /// A manifest to push after its blobs, children before parents.
  struct PendingManifest {
    registry::Manifest manifest;
    std::string reference;
  };

  /// What one image's manifest tree may hold, whatever its source says: a child listed twice is
  /// fetched once, and past these bounds the image fails instead of the run growing without end.
  struct TreeBudget {
    static constexpr int max_depth = 4;
    static constexpr std::size_t max_manifests = 1000;
    static constexpr std::size_t max_bytes = 64u << 20; ///< manifest bytes held for one image
    std::set<std::string> seen; ///< child digests already in the tree
    std::size_t manifests = 0;
    std::size_t bytes = 0;
  };

  /// Fetches the manifest tree below `manifest`, collecting blobs and child manifests.
  http::Status collect(ImageStore& src, const std::string& src_repo, const registry::Manifest& manifest,
                       std::vector<Descriptor>& blobs, std::vector<PendingManifest>& children, int depth) {
    TreeBudget budget;
    return collect(src, src_repo, manifest, blobs, children, depth, budget);
  }
  http::Status collect(ImageStore& src, const std::string& src_repo, const registry::Manifest& manifest,
                       std::vector<Descriptor>& blobs, std::vector<PendingManifest>& children, int depth,
                       TreeBudget& budget) {
    if (depth > TreeBudget::max_depth)
      return http::make_error(http::ErrorKind::invalid, "manifest nesting deeper than 4 levels");
    if (++budget.manifests > TreeBudget::max_manifests || (budget.bytes += manifest.bytes.size()) > TreeBudget::max_bytes)
      return http::make_error(http::ErrorKind::invalid,
                              "the image's manifest tree is larger than " + std::to_string(TreeBudget::max_manifests) +
                                  " manifests or " + std::to_string(TreeBudget::max_bytes >> 20) + " MiB: not copied");
    auto parsed = registry::parse_manifest(manifest.bytes, manifest.media_type);
    if (!parsed)
      return parsed.error();
    if (!parsed->is_index) {
      blobs.push_back(*parsed->config);
      for (const auto& l : parsed->layers)
        blobs.push_back(l);
      return {};
    }
    for (const auto& child : parsed->manifests) {
      if (!budget.seen.insert(child.digest).second)
        continue; // listed twice (or below itself): one copy is enough
      auto m = retry("manifest " + child.digest.substr(0, 19),
                     [&] { return src.get_manifest(src_repo, child.digest); });
      if (!m)
        return m.error();
      if (m->media_type.empty())
        m->media_type = child.media_type;
      if (auto st = collect(src, src_repo, *m, blobs, children, depth + 1, budget); !st)
        return st;
      children.push_back({std::move(*m), child.digest});
    }
    return {};
  }

  /// What the image `digest` in `repo` refers to and `store` lacks: blob digests, or the error of a
  /// child manifest it cannot read. Empty when the image is whole there.
  http::Result<std::vector<std::string>> missing_parts(ImageStore& store, const std::string& repo,
                                                       const std::string& digest) {
    auto top = retry("manifest " + repo + "@" + digest.substr(0, 19), [&] { return store.get_manifest(repo, digest); });
    if (!top)
      return top.error();
    std::vector<Descriptor> blobs;
    std::vector<PendingManifest> children;
    if (auto st = collect(store, repo, *top, blobs, children, 0); !st) {
      if (st.error().kind == http::ErrorKind::not_found)
        return std::vector<std::string>{st.error().message};
      return st.error();
    }
    std::vector<std::string> missing;
    std::set<std::string> seen;
    for (const auto& b : blobs) {
      if (b.non_distributable() || !seen.insert(b.digest).second)
        continue;
      auto exists = retry("blob " + b.digest.substr(0, 19), [&] { return store.blob_exists(repo, b.digest); });
      if (!exists)
        return exists.error();
      if (!*exists)
        missing.push_back(b.digest);
    }
    return missing;
  }

  /// Whether cached_tags has the repository's list in hand (it then answers without waiting).
  bool tags_listed(const std::string& key, const std::string& repository) {
    std::lock_guard lock(tags_mutex);
    auto it = tag_cache.find(key + "|" + repository);
    return it != tag_cache.end() && it->second.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  }

  /// Tags of a repository, listed once per run (rules and referrer lookups share the listing).
  TagList cached_tags(ImageStore& reg, const std::string& key, const std::string& repository) {
    const std::string k = key + "|" + repository;
    std::promise<TagList> mine;
    std::shared_future<TagList> listing;
    bool owner = false;
    {
      std::lock_guard lock(tags_mutex);
      if (auto it = tag_cache.find(k); it != tag_cache.end()) {
        listing = it->second;
      } else {
        listing = mine.get_future().share();
        tag_cache.emplace(k, listing);
        owner = true;
      }
    }
    if (owner) {
      TagList tags = http::make_error(http::ErrorKind::invalid, "listing tags of " + reg.host() + "/" + repository + " failed");
      try {
        tags = retry("listing tags of " + reg.host() + "/" + repository, [&] { return reg.list_tags(repository); });
      } catch (const std::exception& e) {
        tags = http::make_error(http::ErrorKind::invalid, "listing tags of " + reg.host() + "/" + repository + ": " + e.what());
      }
      if (!tags) {
        std::lock_guard lock(tags_mutex);
        tag_cache.erase(k); // a later pass may list it again
      }
      mine.set_value(std::move(tags));
    }
    return listing.get();
  }

  /// The referrers and cosign tags of a repository by the subject they name ("sha256-<hex>" -> those
  /// tags), from its cached tag list; built once per repository.
  using ReferrerTags = std::shared_ptr<const std::map<std::string, std::vector<std::string>>>;
  http::Result<ReferrerTags> referrer_tags(ImageStore& reg, const std::string& key, const std::string& repository) {
    const std::string k = key + "|" + repository;
    {
      std::lock_guard lock(tags_mutex);
      if (auto it = referrer_index.find(k); it != referrer_index.end())
        return it->second;
    }
    auto tags = cached_tags(reg, key, repository);
    if (!tags)
      return tags.error();
    auto made = std::make_shared<std::map<std::string, std::vector<std::string>>>();
    for (const auto& tag : *tags)
      if (registry::is_referrers_tag(tag))
        (*made)[tag.substr(0, tag.find('.'))].push_back(tag);
    std::lock_guard lock(tags_mutex);
    return referrer_index.emplace(k, std::move(made)).first->second;
  }

  /// The same repositories as `task`, another manifest: under `tag`, or by `digest` when tag is "".
  static ImageTask retarget(const ImageTask& task, const std::string& tag, const std::string& digest) {
    ImageTask t{task.source, task.destination, task.rule};
    t.source.tag = t.destination.tag = tag;
    t.source.digest = t.destination.digest = tag.empty() ? digest : "";
    return t;
  }

  /// When the image of a tag was created: its config's "created" (for an index, that of its linux/amd64
  /// image, else of its first image). nullopt when it has none (artifacts).
  http::Result<std::optional<double>> created_of(ImageStore& store, const std::string& repo, const std::string& tag) {
    try {
      return created_of_unguarded(store, repo, tag);
    } catch (const std::exception& e) {
      return http::make_error(http::ErrorKind::invalid, repo + ":" + tag + ": unexpected error: " + e.what());
    }
  }
  http::Result<std::optional<double>> created_of_unguarded(ImageStore& store, const std::string& repo,
                                                           const std::string& tag) {
    auto m = retry("manifest " + repo + ":" + tag, [&] { return store.get_manifest(repo, tag); });
    if (!m)
      return m.error();
    auto parsed = registry::parse_manifest(m->bytes, m->media_type);
    if (!parsed)
      return parsed.error();
    if (parsed->is_index) {
      const Descriptor* pick = nullptr;
      for (const auto& c : parsed->manifests)
        if (c.platform && c.platform->os == "linux" && c.platform->architecture == "amd64") {
          pick = &c;
          break;
        }
      for (const auto& c : parsed->manifests)
        if (!pick && (!c.platform || c.platform->os != "unknown"))
          pick = &c;
      if (!pick)
        return std::optional<double>();
      m = retry("manifest " + pick->digest.substr(0, 19), [&] { return store.get_manifest(repo, pick->digest); });
      if (!m)
        return m.error();
      parsed = registry::parse_manifest(m->bytes, m->media_type);
      if (!parsed)
        return parsed.error();
    }
    if (!parsed->config || parsed->config->size > (4 << 20))
      return std::optional<double>();
    std::string config;
    auto read = retry("config of " + repo + ":" + tag, [&] {
      config.clear();
      return store.read_blob(repo, *parsed->config, [&](std::string_view chunk) -> http::Status {
        // No more than the descriptor says (itself at most 4 MiB), whatever the registry sends.
        if (config.size() + chunk.size() > static_cast<std::size_t>(parsed->config->size))
          return http::make_error(http::ErrorKind::invalid, "the config blob is larger than its descriptor's " +
                                                                std::to_string(parsed->config->size) + " bytes");
        config.append(chunk);
        return {};
      });
    });
    if (!read)
      return read.error();
    try {
      auto j = util::parse_json(config);
      if (j.is_object() && j.contains("created") && j["created"].is_string())
        return parse_rfc3339(j["created"].get<std::string>());
    } catch (const nlohmann::json::exception&) {
    }
    return std::optional<double>();
  }

  /// The HEAD of a manifest as a request to stream with others (Client::stream), when its store
  /// is a registry without caps.
  std::optional<std::pair<http::Request, Registry*>> head_request_for(const registry::Reference& ref,
                                                                     const std::string& expected = {}) {
    auto* reg = dynamic_cast<Registry*>(registry_for(ref).first);
    if (!reg)
      return std::nullopt;
    auto r = reg->head_request(ref.repository, ref.reference(), expected);
    if (!r)
      return std::nullopt;
    return std::make_pair(std::move(*r), reg);
  }

  /// Once the HEAD stream meets a registry that wants tokens and has none for a repository, fetches
  /// the pull tokens of all the rules' repositories there, 8 at a time. Otherwise each would be
  /// fetched by the first worker that needs it, only as the look-ahead reaches its repository: one
  /// token server round trip after another.
  void warm_tokens(const registry::Reference& ref) {
    auto [store, key] = registry_for(ref);
    auto* reg = dynamic_cast<Registry*>(store);
    if (!reg || !reg->wants_tokens() || !token_pool)
      return;
    {
      std::lock_guard lock(warm_mutex);
      if (!warmed.insert(key).second)
        return;
    }
    std::set<std::string> repositories;
    for (const auto& e : endpoints)
      if (registry_for(e).second == key)
        repositories.insert(e.repository);
    for (const auto& repository : repositories)
      token_pool->submit([this, reg, key = key, repository] {
        {
          std::lock_guard lock(warm_mutex);
          if (cancelled() || warm_stop || warm_failed.count(key))
            return; // a token server that fails is left to the workers, which report it
        }
        if (!reg->fetch_pull_token(repository)) {
          std::lock_guard lock(warm_mutex);
          warm_failed.insert(key);
        }
      });
  }

  /// Whether the answers in `known` finish `task` with no further request: both ends hold the same
  /// digest, and nothing can refer to it (referrers are off, or the source has no referrers API and
  /// its tags, already listed, have no "sha256-<hex>" tag for it). Never waits.
  bool settled_by(const ImageTask& task, const KnownHeads& known) {
    if (!known.destination || !*known.destination || options.force)
      return false;
    std::string digest = task.source.digest;
    std::string media_type;
    if (digest.empty()) {
      if (!known.source || !*known.source)
        return false;
      digest = (*known.source)->digest;
      media_type = (*known.source)->media_type;
    }
    if ((*known.destination)->digest != digest)
      return false;
    if (media_type.empty()) // pinned, or a 304 (which names none): the same digest, the same manifest
      media_type = (*known.destination)->media_type;
    if (!options.referrers)
      return true;
    auto [src, key] = registry_for(task.source);
    if (!src->referrers_api_absent() || !tags_listed(key, task.source.repository))
      return false;
    auto by_subject = referrer_tags(*src, key, task.source.repository); // listed: no request
    if (!by_subject)
      return false;
    const auto& tags_of = **by_subject;
    // An index's images may have referrer tags of their own: then its children must be read.
    // (A type that is not known to be an image's, e.g. taken from the other end's answer to a 304,
    // or a generic one, settles nothing when there are such tags.)
    return !tags_of.count(registry::referrers_tag(digest)) &&
           (tags_of.empty() || registry::is_image_manifest_type(media_type));
  }

  /// copy_image, where anything thrown fails this image only: what a remote party sends must not
  /// end the run before its report and failed list are written.
  ImageResult copy_image_guarded(const ImageTask& task, const KnownHeads& known) {
    try {
      return copy_image(task, 0, known);
    } catch (const std::exception& e) {
      ImageResult r;
      r.task = task;
      r.error = std::string("unexpected error: ") + e.what();
      r.permanent = true;
      return r;
    }
  }

  /// Copies one image, then what refers to it (up to three levels: a signature of an SBOM of an image).
  ImageResult copy_image(const ImageTask& task, int depth = 0, const KnownHeads& known = {}) {
    ImageResult r = copy_one(task, Clock::now() - known.answered <= KnownHeads::fresh ? known : KnownHeads{}, depth == 0);
    if (r.ok && !r.kept && options.referrers && !r.filtered && depth < 3 && !cancelled())
      copy_referrers(r, depth);
    return r;
  }

  /// Referrers of r's digest: from the referrers API when the source has it, else from the tags that
  /// stand in for it ("sha256-<hex>" index, cosign's "sha256-<hex>.sig/.att/.sbom"). Each is copied like
  /// an image, by digest or under the same tag. A failure fails the image: nothing is hidden.
  void copy_referrers(ImageResult& r, int depth) {
    const ImageTask& task = r.task;
    const auto begun = Clock::now();
    auto src_entry = registry_for(task.source);
    auto dst_entry = registry_for(task.destination);
    ImageStore& src = *src_entry.first;
    ImageStore& dst = *dst_entry.first;
    const std::string& src_repo = task.source.repository;
    const std::string& dst_repo = task.destination.repository;
    auto fail = [&](const std::string& message, bool permanent) {
      r.seconds += std::chrono::duration<double>(Clock::now() - begun).count();
      r.ok = false;
      r.error = message;
      r.permanent = permanent;
    };

    std::vector<ImageTask> subs;
    auto listed = retry("referrers of " + task.source.to_string(), [&] { return src.list_referrers(src_repo, r.digest); });
    if (!listed)
      return fail(listed.error().message, !listed.error().retryable());
    std::vector<registry::Referrer> from_api;
    if (*listed) {
      from_api = std::move(**listed);
      for (const auto& ref : from_api)
        subs.push_back(retarget(task, "", ref.digest));
    } else {
      auto by_subject = referrer_tags(src, src_entry.second, src_repo);
      if (!by_subject)
        return fail(by_subject.error().message, !by_subject.error().retryable());
      const auto& tags_of = **by_subject;
      // Subjects: the image, and for an index each of its images too (cosign sign --recursive signs
      // them one by one); the children are read only when the repository has such tags to match.
      std::vector<std::string> subjects{r.digest};
      const bool others = tags_of.size() > tags_of.count(registry::referrers_tag(r.digest));
      // An image's index (not a referrers index); a type not known to be an image's is read too.
      if (others && depth == 0 && !registry::is_image_manifest_type(r.media_type)) {
        auto index = retry("manifest " + task.source.to_string(), [&] { return src.get_manifest(src_repo, r.digest); });
        if (!index)
          return fail(index.error().message, !index.error().retryable());
        if (auto parsed = registry::parse_manifest(index->bytes, index->media_type); parsed && parsed->is_index)
          for (const auto& child : parsed->manifests)
            subjects.push_back(child.digest);
      }
      std::vector<ImageTask> tag_subs;
      for (const auto& subject : subjects) {
        const std::string prefix = registry::referrers_tag(subject);
        auto found = tags_of.find(prefix);
        if (found == tags_of.end())
          continue;
        for (const auto& tag : found->second) {
          tag_subs.push_back(retarget(task, tag, ""));
          if (tag != prefix)
            continue;
          // The referrers index: its entries are copied first, one by one, so that what refers to them
          // (a signature of an SBOM) comes too; then the index itself, byte for byte.
          auto index = retry("manifest " + task.source.name() + ":" + tag, [&] { return src.get_manifest(src_repo, tag); });
          if (!index)
            return fail(index.error().message, !index.error().retryable());
          auto parsed = registry::parse_manifest(index->bytes, index->media_type);
          if (!parsed || !parsed->is_index)
            return fail(task.source.name() + ":" + tag + " is not an image index of referrers", true);
          for (const auto& child : parsed->manifests)
            subs.push_back(retarget(task, "", child.digest));
        }
      }
      subs.insert(subs.end(), tag_subs.begin(), tag_subs.end());
    }
    for (const auto& sub : subs) {
      ImageResult s = copy_image(sub, depth + 1);
      log_result(s, "referrer ");
      r.referrers += 1 + s.referrers;
      r.bytes += s.bytes;
      if (!s.ok)
        return fail("referrer " + sub.source.reference() + ": " + s.error, s.permanent);
    }
    if (!from_api.empty() && !options.dry_run)
      if (auto st = ensure_referrers_tag(dst, dst_entry.second, dst_repo, r.digest, from_api); !st)
        return fail(st.error().message, !st.error().retryable());
    r.seconds += std::chrono::duration<double>(Clock::now() - begun).count();
  }

  /// A destination without the referrers API learns of referrers through the "sha256-<hex>" tag: an
  /// index listing them, which clients update (OCI distribution-spec 1.1). Adds what is missing.
  http::Status ensure_referrers_tag(ImageStore& dst, const std::string& dst_key, const std::string& repo,
                                    const std::string& subject, const std::vector<registry::Referrer>& referrers) {
    auto api = retry("referrers of " + dst.host() + "/" + repo, [&] { return dst.list_referrers(repo, subject); });
    if (!api)
      return api.error();
    if (*api)
      return {}; // the destination indexes them itself
    const std::string tag = registry::referrers_tag(subject);
    std::mutex* writer;
    {
      std::lock_guard lock(blobs_mutex);
      auto& slot = tag_writers[dst_key + "|" + repo + "|" + tag];
      if (!slot)
        slot = std::make_unique<std::mutex>();
      writer = slot.get();
    }
    std::lock_guard one_writer(*writer); // read, add, write: one at a time per tag
    nlohmann::json index = {{"schemaVersion", 2}, {"mediaType", registry::media::oci_index}, {"manifests", nlohmann::json::array()}};
    auto current = retry("manifest " + repo + ":" + tag, [&] { return dst.get_manifest(repo, tag); });
    if (current) {
      try {
        auto j = util::parse_json(current->bytes);
        if (j.is_object() && j.contains("manifests") && j["manifests"].is_array())
          index = std::move(j);
      } catch (const nlohmann::json::exception&) {
      }
    } else if (current.error().status != 404 && current.error().kind != http::ErrorKind::not_found) {
      return current.error();
    }
    std::set<std::string> listed;
    for (const auto& d : index["manifests"])
      if (d.is_object() && d.contains("digest") && d["digest"].is_string())
        listed.insert(d["digest"].get<std::string>());
    bool added = false;
    for (const auto& ref : referrers)
      if (listed.insert(ref.digest).second) {
        index["manifests"].push_back(util::parse_json(ref.descriptor));
        added = true;
      }
    if (!added)
      return {};
    registry::Manifest m;
    m.media_type = std::string(registry::media::oci_index);
    m.bytes = index.dump();
    m.digest = registry::sha256_digest(m.bytes);
    return retry("manifest " + repo + ":" + tag, [&] { return dst.put_manifest(repo, tag, m); });
  }

  /// `top`: a task of the run, not a referrer copied with one; its source tag's digest is kept in
  /// options.tag_digests (Pass 1 looks only those up).
  ImageResult copy_one(const ImageTask& task, const KnownHeads& known = {}, bool top = false) {
    ImageResult r;
    r.task = task;
    auto start = Clock::now();
    auto finish = [&](std::string error, http::ErrorKind kind = http::ErrorKind::network, long status = 0) {
      r.ok = error.empty();
      r.error = std::move(error);
      // Missing images, refused credentials and bad input fail at once: another pass cannot help.
      http::Error e = http::make_error(kind, "", status);
      r.permanent = !r.ok && kind != http::ErrorKind::digest_mismatch && kind != http::ErrorKind::cancelled &&
                    !e.retryable();
      r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
      return r;
    };
    auto fail = [&](const http::Error& e) { return finish(e.message, e.kind, e.status); };
    if (cancelled())
      return finish("cancelled before it started");
    // Plain variables, not structured bindings: lambdas below capture them.
    auto src_entry = registry_for(task.source);
    auto dst_entry = registry_for(task.destination);
    ImageStore* src = src_entry.first;
    ImageStore* dst = dst_entry.first;
    const std::string dst_key = dst_entry.second;
    const std::string& src_repo = task.source.repository;
    const std::string& dst_repo = task.destination.repository;
    std::string src_ref = task.source.reference();
    std::string dst_ref = task.destination.reference();

    // Two HEADs decide whether there is anything to do; they go to two registries, so in parallel
    // (a re-sync of thousands of images is nothing but these two requests each). Run's first pass
    // may have sent them already, in a batch.
    using Head = http::Result<std::optional<registry::ManifestHead>>;
    std::future<Head> dst_future;
    if (!known.destination)
      dst_future = head_pool->submit([&] {
        return retry("destination " + task.destination.to_string(), [&] { return dst->head_manifest(dst_repo, dst_ref); },
                     known.destination_failed ? &*known.destination_failed : nullptr);
      });
    // The HEAD task refers to this frame: whatever way it is left, not before the HEAD is done.
    auto wait_head = std::unique_ptr<std::future<Head>, void (*)(std::future<Head>*)>(&dst_future, [](auto* f) {
      if (f->valid())
        f->wait();
    });
    std::string src_digest = task.source.digest;
    if (src_digest.empty()) {
      Head head = known.source ? Head(*known.source)
                               : retry("source " + task.source.to_string(),
                                       [&] { return src->head_manifest(src_repo, src_ref); },
                                       known.source_failed ? &*known.source_failed : nullptr);
      if (!head)
        return fail(head.error());
      if (!*head)
        return finish("source image " + task.source.to_string() + " not found", http::ErrorKind::not_found);
      src_digest = (*head)->digest;
      r.media_type = (*head)->media_type;
    }
    Head dst_head = known.destination ? Head(*known.destination) : dst_future.get();
    if (!dst_head)
      return fail(dst_head.error());
    r.digest = src_digest;
    if (r.media_type.empty() && *dst_head && (*dst_head)->digest == src_digest)
      r.media_type = (*dst_head)->media_type;
    if (options.tag_digests && top && task.source.digest.empty())
      options.tag_digests->remember(task.source.to_string(), src_digest);
    if (*dst_head && (*dst_head)->digest == src_digest && !options.force) {
      r.skipped = true;
      return finish("");
    }

    auto manifest = retry("manifest " + task.source.to_string(), [&] { return src->get_manifest(src_repo, src_digest); });
    if (!manifest)
      return fail(manifest.error());
    r.media_type = manifest->media_type;
    if (!options.platforms.empty() && registry::is_index_type(manifest->media_type)) {
      auto filtered = registry::filter_index(*manifest, options.platforms);
      if (!filtered)
        return fail(filtered.error().context(task.source.to_string()));
      if (*filtered) {
        if (!options.filter_index)
          return finish(task.source.to_string() + " has platforms outside --platforms; copying its index whole keeps the "
                                                  "digest: add --filter-index to write a filtered index (a new digest)",
                        http::ErrorKind::invalid);
        log->warn("{}: writing a FILTERED index with only {}: digest {} becomes {}", task.source.to_string(),
                  fmt::join(options.platforms, ","), src_digest, (*filtered)->digest);
        *manifest = std::move(**filtered);
        r.digest = manifest->digest;
        r.filtered = true;
        if (*dst_head && (*dst_head)->digest == r.digest && !options.force) {
          r.skipped = true;
          return finish("");
        }
      }
    }
    if (*dst_head && (*dst_head)->digest != r.digest) {
      r.replaced = (*dst_head)->digest;
      if (options.no_overwrite) {
        r.kept = true;
        return finish("");
      }
    }
    std::vector<Descriptor> blobs;
    std::vector<PendingManifest> children;
    if (auto st = collect(*src, src_repo, *manifest, blobs, children, 0); !st)
      return fail(st.error().context("reading " + task.source.to_string()));

    if (options.dry_run)
      return plan_image(r, *dst, dst_key, dst_repo, blobs, start);

    // Every distinct blob of the whole tree goes to the shared scheduler at once.
    std::set<std::string> seen;
    std::vector<std::future<http::Result<BlobStat>>> futures;
    for (const auto& b : blobs) {
      if (!seen.insert(b.digest).second)
        continue;
      futures.push_back(blob_pool->submit([this, src, dst, dst_key, &src_repo, &dst_repo, b] {
        if (cancelled())
          return http::Result<BlobStat>(http::make_error(http::ErrorKind::cancelled, "cancelled"));
        return ensure_blob(*src, src_repo, *dst, dst_key, dst_repo, b);
      }));
    }
    std::optional<http::Error> first_error;
    int failed = 0;
    for (auto& f : futures) {
      auto res = f.get();
      if (!res) {
        ++failed;
        if (!first_error)
          first_error = res.error();
        continue;
      }
      r.bytes += res->bytes;
      switch (res->outcome) {
      case BlobOutcome::copied:
        ++r.blobs_copied;
        break;
      case BlobOutcome::existed:
        ++r.blobs_existed;
        break;
      case BlobOutcome::mounted:
        ++r.blobs_mounted;
        break;
      case BlobOutcome::skipped_foreign:
        ++r.blobs_foreign;
        break;
      }
    }
    if (failed > 0)
      return finish(std::to_string(failed) + " of " + std::to_string(futures.size()) + " blobs failed, first: " +
                        first_error->message,
                    first_error->kind, first_error->status);

    // Children first (by digest), then the top manifest under its tag.
    for (const auto& child : children) {
      auto st = retry("manifest " + child.reference.substr(0, 19),
                      [&] { return dst->put_manifest(dst_repo, child.reference, child.manifest); });
      if (!st)
        return fail(st.error());
    }
    auto st = retry("manifest " + ref_text(dst_repo, dst_ref), [&] { return dst->put_manifest(dst_repo, dst_ref, *manifest); });
    if (!st)
      return fail(st.error());
    return finish("");
  }

  /// Dry run: which blobs are missing at the destination (HEAD only), and how many bytes would move.
  ImageResult plan_image(ImageResult& r, ImageStore& dst, const std::string& dst_key, const std::string& dst_repo,
                         const std::vector<Descriptor>& blobs, Clock::time_point start) {
    std::set<std::string> seen;
    for (const auto& b : blobs) {
      if (!seen.insert(b.digest).second)
        continue;
      if (b.non_distributable()) {
        ++r.blobs_foreign;
        continue;
      }
      auto exists = retry("blob " + b.digest.substr(0, 19), [&] { return dst.blob_exists(dst_repo, b.digest); });
      if (!exists) {
        r.error = exists.error().message;
        r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
        return r;
      }
      if (*exists) {
        ++r.blobs_existed;
        continue;
      }
      std::lock_guard lock(planned_mutex);
      if (planned_blobs.insert(dst_key + "|" + b.digest).second) {
        ++r.blobs_copied;
        r.bytes += static_cast<std::uint64_t>(b.size);
      } else {
        ++r.blobs_mounted; // another image of this run brings it: a mount
      }
    }
    r.ok = true;
    r.planned = true;
    r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return r;
  }

  void log_result(const ImageResult& r, const std::string& prefix = "") {
    std::string arrow = prefix + r.task.source.to_string() + " -> " + r.task.destination.to_string();
    std::string referrers = r.referrers ? " referrers=" + std::to_string(r.referrers) : "";
    if (!r.ok) {
      log->error("FAILED {}: {}", arrow, r.error);
    } else if (r.kept) {
      log->warn("KEPT {}: the destination tag holds {}, not the source's {}; left as it is (--no-overwrite)", arrow,
                r.replaced, r.digest);
    } else if (r.planned) {
      log->info("PLAN {} {} would copy {} blob(s), {} bytes; {} present, {} shared with other images{}{}{}", arrow,
                r.digest, r.blobs_copied, r.bytes, r.blobs_existed, r.blobs_mounted,
                r.blobs_foreign ? ", " + std::to_string(r.blobs_foreign) + " foreign" : "", referrers,
                r.replaced.empty() ? "" : "; would replace " + r.replaced);
    } else if (r.skipped) {
      log->info("OK {} {} already present, skipped ({:.2f}s){}", arrow, r.digest, r.seconds, referrers);
    } else {
      log->info("OK {} {} bytes={} time={:.2f}s blobs copied={} existed={} mounted={}{}{}{}", arrow, r.digest, r.bytes,
                r.seconds, r.blobs_copied, r.blobs_existed, r.blobs_mounted,
                r.blobs_foreign ? " foreign=" + std::to_string(r.blobs_foreign) : "", referrers,
                r.replaced.empty() ? "" : " replaced=" + r.replaced);
    }
  }
};

Engine::Engine(http::Client& client, AuthConfig auth, EngineOptions options, std::shared_ptr<spdlog::logger> log)
    : m_impl(std::make_unique<Impl>(client, std::move(auth), options, std::move(log))) {}

Engine::~Engine() = default;

TagLister Engine::tag_lister() {
  return [this](const registry::Reference& ref) -> http::Result<std::vector<std::string>> {
    if (m_impl->cancelled()) // interrupted: rules not yet expanded start nothing new
      return http::make_error(http::ErrorKind::cancelled, "listing tags of " + ref.name() + ": interrupted");
    auto [reg, key] = m_impl->registry_for(ref);
    return m_impl->cached_tags(*reg, key, ref.repository);
  };
}

CreatedLookup Engine::created_lookup() {
  return [this](const registry::Reference& ref, const std::vector<std::string>& tags)
             -> http::Result<std::map<std::string, double>> {
    if (m_impl->cancelled())
      return http::make_error(http::ErrorKind::cancelled, "reading creation times in " + ref.name() + ": interrupted");
    auto [store, key] = m_impl->registry_for(ref);
    std::map<std::string, double> times;
    for (std::size_t from = 0; from < tags.size(); from += 8) {
      std::vector<std::pair<std::string, std::future<http::Result<std::optional<double>>>>> running;
      for (std::size_t i = from; i < std::min(tags.size(), from + 8); ++i)
        running.emplace_back(tags[i], std::async(std::launch::async, [this, s = store, &ref, tag = tags[i]] {
                               return m_impl->created_of(*s, ref.repository, tag);
                             }));
      for (auto& [tag, f] : running) {
        auto t = f.get();
        if (!t && (t.error().kind == http::ErrorKind::not_found || t.error().kind == http::ErrorKind::unsupported ||
                   t.error().kind == http::ErrorKind::invalid)) {
          // Deleted since the listing, schema 1, not an image: no time, so it ranks as the oldest.
          m_impl->log->warn("{}:{}: no creation time ({}); it counts as the oldest for \"latest\"", ref.name(), tag,
                            t.error().message);
          continue;
        }
        if (!t)
          return t.error().context("reading when " + ref.name() + ":" + tag + " was created (for \"latest\")");
        if (*t)
          times.emplace(tag, **t);
      }
    }
    return times;
  };
}

CatalogLister Engine::catalog_lister() {
  return [this](const std::string& host, const std::string& ns) {
    registry::Reference any;
    any.registry = host;
    any.repository = ns;
    auto [reg, key] = m_impl->registry_for(any);
    auto* registry = dynamic_cast<Registry*>(reg);
    if (!registry)
      return http::Result<std::vector<std::string>>(
          http::make_error(http::ErrorKind::invalid, host + " is not a registry: it has no catalog"));
    auto repos = m_impl->retry("listing the catalog of " + host, [&] { return registry->list_repositories(); });
    if (repos || (repos.error().kind != http::ErrorKind::unauthorized && repos.error().kind != http::ErrorKind::not_found))
      return repos;
    // Harbor lets only system admins read _catalog; its project API lists what a member may see.
    const std::string project = ns.substr(0, ns.find('/'));
    auto harbor = m_impl->retry("listing Harbor project " + project, [&] { return registry->list_harbor_project(project); });
    if (!harbor)
      return http::Result<std::vector<std::string>>(http::make_error(
          repos.error().kind,
          "registry " + host + " does not let these credentials list its catalog (_catalog: HTTP " +
              std::to_string(repos.error().status) + "); " +
              (harbor.error().kind == http::ErrorKind::unsupported
                   ? harbor.error().message
                   : "listing project \"" + project + "\" through the Harbor API (/api/v2.0) did not work either: " +
                         harbor.error().message) +
              "; name the repositories one by one",
          repos.error().status));
    m_impl->log->info("{}: the catalog is refused; project {} listed through the Harbor API: {} repositories", host,
                      project, harbor->size());
    return harbor;
  };
}

void TaskFeed::push(ImageTask task) {
  {
    std::lock_guard lock(m_mutex);
    m_queue.push_back(std::move(task));
  }
  m_cv.notify_one();
}

void TaskFeed::close() {
  {
    std::lock_guard lock(m_mutex);
    m_closed = true;
  }
  m_cv.notify_all();
}

std::optional<ImageTask> TaskFeed::front_locked() {
  if (m_queue.empty())
    return std::nullopt;
  ImageTask task = std::move(m_queue.front());
  m_queue.pop_front();
  return task;
}

std::optional<ImageTask> TaskFeed::try_pop() {
  std::lock_guard lock(m_mutex);
  return front_locked();
}

std::optional<ImageTask> TaskFeed::pop() {
  std::unique_lock lock(m_mutex);
  m_cv.wait(lock, [&] { return m_closed || !m_queue.empty(); });
  return front_locked();
}

void Engine::prepare(const std::vector<registry::Reference>& refs) {
  for (const auto& ref : refs)
    m_impl->registry_for(ref);
  m_impl->endpoints = refs;
}

Summary Engine::run(TaskFeed& feed) {
  auto start = Clock::now();
  Summary summary;
  // Deques: workers hold pointers to their task and result while the dispatcher appends more.
  std::deque<ImageTask> tasks;
  std::deque<ImageResult> results;
  int workers = std::max(1, m_impl->options.workers);
  m_impl->blob_pool = std::make_unique<ThreadPool>(workers);
  m_impl->head_pool = std::make_unique<ThreadPool>(workers);
  m_impl->token_pool = std::make_unique<ThreadPool>(8);
  m_impl->warm_stop = false;
  auto run_one = [this](const ImageTask& task, ImageResult& result, int pass, const KnownHeads& known = {}) {
    result = m_impl->copy_image_guarded(task, known);
    m_impl->log_result(result);
    bool last = result.ok || result.permanent || pass >= m_impl->options.retries;
    if (last)
      ++m_impl->progress.images_done;
    if (!result.ok && last)
      ++m_impl->progress.images_failed;
  };
  std::vector<std::size_t> pending;
  {
    // Pass 1 takes the tasks as they come. This thread sends the HEADs that decide whether an
    // image needs anything, all of them through one libcurl multi handle (a re-sync is mostly
    // these requests; one thread driving them costs far less than a thread blocking on each),
    // and hands each task to an image worker with the answers. One end's HEAD goes first; the
    // other's follows with the digest it answered in If-None-Match, so that a registry whose tag
    // is already at that digest answers 304 without reading the manifest: on a re-sync, half the
    // HEADs cost the registries less. The other HEADs in flight hide the wait. When an earlier run
    // saw the source tag's digest (options.tag_digests), both go at once, each naming it: on a
    // re-sync, every HEAD is a cheap one. At most `ahead`
    // tasks are taken and not finished (asking, waiting for a worker, or running), so a tag is not
    // resolved long before its image is copied; answers older than KnownHeads::fresh when the
    // worker starts are asked again anyway.
    const std::size_t ahead = std::max<std::size_t>(16, 2 * static_cast<std::size_t>(workers));
    std::mutex mutex;
    std::condition_variable cv;
    std::size_t outstanding = 0;
    ThreadPool image_pool(workers);
    std::vector<std::future<void>> done;
    struct Asked {
      std::size_t task;
      bool source;
      Registry* registry;
      http::Request request;
    };
    std::map<std::uint64_t, Asked> asked;
    struct Waiting {
      int in_flight = 0;        ///< HEADs sent and not answered: 1, or 2 with a digest an earlier run saw
      bool then_other = false;  ///< the other end's HEAD goes once the one in flight is answered
      KnownHeads known;         ///< answers so far
    };
    std::map<std::size_t, Waiting> waiting; // by task: those with a HEAD in flight
    std::deque<http::Client::Streamed> queued;
    std::uint64_t next_id = 0;
    bool feed_done = false;

    struct Release { // whatever way run_one ends, the dispatcher may take another task
      std::mutex& mutex;
      std::condition_variable& cv;
      std::size_t& outstanding;
      ~Release() {
        std::lock_guard lock(mutex);
        --outstanding;
        cv.notify_one();
      }
    };
    // A task its answers settle (a re-sync is mostly these) is finished right here: waking a worker
    // for it would cost more than the task. It runs the same code either way; a task that did need a
    // request would only hold up the HEADs of the others meanwhile. The others go to the image
    // workers in the feed's order (answers come back in any order: each image asks its two ends one
    // after the other, starting with either), so that images are copied in the order of the rules
    // and their tags; but a task is held at most a second behind an earlier one whose answers are
    // slow to come (a registry that does not answer would otherwise hold up every other one's images).
    std::map<std::size_t, std::optional<KnownHeads>> ready; // answered; nullopt: finished or started
    std::size_t next_ready = 0;
    auto start = [&](std::size_t i, KnownHeads known) {
      done.push_back(image_pool.submit([&, t = &tasks[i], r = &results[i], k = std::move(known)] {
        Release release{mutex, cv, outstanding};
        run_one(*t, *r, 0, k);
      }));
    };
    auto start_ready = [&] {
      for (auto it = ready.begin(); it != ready.end() && it->first == next_ready; it = ready.begin()) {
        auto node = ready.extract(it);
        ++next_ready;
        if (node.mapped())
          start(node.key(), std::move(*node.mapped()));
      }
      const auto now = Clock::now();
      for (auto& [i, held] : ready)
        if (held && now - held->answered > std::chrono::seconds(1)) {
          start(i, std::move(*held));
          held.reset();
        }
    };
    auto answered = [&](std::size_t i, KnownHeads known) {
      known.answered = Clock::now();
      if (m_impl->settled_by(tasks[i], known)) {
        {
          Release release{mutex, cv, outstanding};
          run_one(tasks[i], results[i], 0, known);
        }
        ready.emplace(i, std::nullopt);
      } else {
        ready.emplace(i, std::move(known));
      }
      start_ready();
    };
    // Queues the HEAD of `ref` for task i; false when it cannot go in the stream (the worker asks).
    // An image's second HEAD goes before the first HEADs of images not started: it finishes an
    // image, and frees its place in the look-ahead.
    auto ask = [&](std::size_t i, const registry::Reference& ref, bool source, const std::string& expected,
                   bool second) {
      auto req = m_impl->head_request_for(ref, expected);
      if (!req) {
        m_impl->warm_tokens(ref); // no token in hand, perhaps
        return false;
      }
      asked.emplace(next_id, Asked{i, source, req->second, req->first});
      http::Client::Streamed item{next_id++, std::move(req->first)};
      if (second)
        queued.push_front(std::move(item));
      else
        queued.push_back(std::move(item));
      return true;
    };
    // Takes one task from the feed (waiting for one if `wait`); false when there is none.
    auto take = [&](bool wait) {
      if (feed_done)
        return false;
      {
        std::unique_lock lock(mutex);
        if (wait)
          cv.wait(lock, [&] { return outstanding < ahead; });
        else if (outstanding >= ahead)
          return false;
      }
      auto task = wait ? feed.pop() : feed.try_pop();
      if (!task) {
        feed_done = wait;
        return false;
      }
      {
        std::lock_guard lock(mutex);
        ++outstanding;
      }
      m_impl->registry_for(task->source); // already set up by prepare(): a lookup
      m_impl->registry_for(task->destination);
      const std::size_t i = tasks.size();
      pending.push_back(i);
      tasks.push_back(std::move(*task));
      results.emplace_back();
      ++m_impl->progress.images_total;
      Waiting w;
      if (!m_impl->cancelled()) {
        const auto& task = tasks[i];
        // A source pinned by digest is not asked: its destination is, alone (unconditional: its
        // answer's media type may settle the task).
        const bool pinned = !task.source.digest.empty();
        std::optional<std::string> remembered;
        if (!pinned && m_impl->options.tag_digests)
          remembered = m_impl->options.tag_digests->find(task.source.to_string());
        if (pinned) {
          w.in_flight = ask(i, task.destination, false, {}, false);
        } else if (remembered) {
          w.in_flight = ask(i, task.source, true, *remembered, false);
          w.in_flight += ask(i, task.destination, false, *remembered, false);
        } else {
          // Every other image asks the source first: each registry then answers half of the
          // conditional HEADs, the cheap ones (alternating measured about 3% faster than source
          // first on a re-sync between two docker-registry processes, whose CPU bounds it).
          const bool source_first = i % 2 == 0;
          const auto& first = source_first ? task.source : task.destination;
          const auto& second = source_first ? task.destination : task.source;
          if (ask(i, first, source_first, {}, false)) {
            w.in_flight = 1;
            w.then_other = true;
          } else {
            w.in_flight = ask(i, second, !source_first, {}, false);
          }
        }
      }
      if (w.in_flight)
        waiting[i] = std::move(w);
      else
        answered(i, {});
      return true;
    };
    m_impl->client.stream(
        [&](bool idle) -> std::optional<http::Client::Streamed> {
          if (!ready.empty())
            start_ready();
          while (queued.empty())
            if (!take(idle))
              return std::nullopt;
          auto item = std::move(queued.front());
          queued.pop_front();
          return item;
        },
        [&](std::uint64_t id, http::Result<http::Response> response) {
          auto it = asked.find(id);
          Asked a = std::move(it->second);
          asked.erase(it);
          auto& w = waiting[a.task];
          auto& known = w.known;
          auto answer = a.registry->read_head(a.request, response);
          (a.source ? known.source : known.destination) = std::move(answer.head);
          (a.source ? known.source_failed : known.destination_failed) = std::move(answer.failed);
          --w.in_flight;
          if (w.then_other) {
            w.then_other = false;
            const bool source = !a.source;
            const auto& got = a.source ? known.source : known.destination;
            const auto& ref = source ? tasks[a.task].source : tasks[a.task].destination;
            w.in_flight += !m_impl->cancelled() &&
                           ask(a.task, ref, source, got && *got ? (*got)->digest : std::string(), true);
          }
          if (w.in_flight == 0) {
            KnownHeads k = std::move(known);
            waiting.erase(a.task);
            answered(a.task, std::move(k));
          }
        },
        2 * static_cast<std::size_t>(workers));
    for (auto& f : done)
      f.get();
  }
  for (int pass = 1;; ++pass) {
    std::vector<std::size_t> failed;
    for (auto i : pending)
      if (!results[i].ok && !results[i].permanent)
        failed.push_back(i);
    pending.swap(failed);
    if (pending.empty() || pass > m_impl->options.retries || m_impl->cancelled())
      break;
    m_impl->log->warn("pass {}: retrying {} failed image task(s)", pass + 1, pending.size());
    ThreadPool image_pool(std::min<int>(workers, static_cast<int>(pending.size())));
    std::vector<std::future<void>> done;
    for (auto i : pending)
      done.push_back(image_pool.submit([&, i, pass] { run_one(tasks[i], results[i], pass); }));
    for (auto& f : done)
      f.get();
  }
  m_impl->blob_pool.reset();
  m_impl->head_pool.reset();
  m_impl->warm_stop = true;
  m_impl->token_pool.reset();
  summary.images = tasks.size();
  {
    std::lock_guard lock(m_impl->registries_mutex);
    for (const auto& [key, store] : m_impl->registries)
      if (store)
        summary.resumed += store->resumed_downloads();
  }
  for (auto& r : results) {
    summary.bytes += r.bytes;
    if (!r.ok)
      ++summary.failed;
  }
  summary.results.assign(std::make_move_iterator(results.begin()), std::make_move_iterator(results.end()));
  summary.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return summary;
}

const Progress& Engine::progress() const { return m_impl->progress; }

std::vector<VerifyResult> Engine::verify(const std::vector<ImageTask>& tasks, bool deep) {
  std::vector<VerifyResult> out(tasks.size());
  ThreadPool pool(std::max(1, std::min<int>(m_impl->options.workers, static_cast<int>(tasks.size()))));
  std::vector<std::future<void>> done;
  for (std::size_t i = 0; i < tasks.size(); ++i)
    done.push_back(pool.submit([&, i] {
      auto& v = out[i];
      v.task = tasks[i];
      auto [src, sk] = m_impl->registry_for(tasks[i].source);
      auto [dst, dk] = m_impl->registry_for(tasks[i].destination);
      auto s = m_impl->retry("source " + tasks[i].source.to_string(),
                             [&, src = src] { return src->head_manifest(tasks[i].source.repository, tasks[i].source.reference()); });
      if (!s) {
        v.error = s.error().message;
        return;
      }
      v.source_digest = *s ? (*s)->digest : "";
      if (!*s)
        v.error = "source image not found";
      auto d = m_impl->retry("destination " + tasks[i].destination.to_string(), [&, dst = dst] {
        return dst->head_manifest(tasks[i].destination.repository, tasks[i].destination.reference());
      });
      if (!d) {
        v.error = d.error().message;
        return;
      }
      v.destination_digest = *d ? (*d)->digest : "";
      if (!v.same() && !v.destination_digest.empty() && !v.source_digest.empty() && !m_impl->options.platforms.empty()) {
        // Copied with --platforms --filter-index: the destination holds the source's index filtered.
        auto m = m_impl->retry("manifest " + tasks[i].source.to_string(), [&, src = src] {
          return src->get_manifest(tasks[i].source.repository, v.source_digest);
        });
        if (!m) {
          v.error = m.error().message;
          return;
        }
        if (registry::is_index_type(m->media_type))
          if (auto filtered = registry::filter_index(*m, m_impl->options.platforms); filtered && *filtered &&
                                                                                    (*filtered)->digest == v.destination_digest)
            v.filtered_digest = (*filtered)->digest;
      }
      if (deep && v.same()) {
        auto missing = m_impl->missing_parts(*dst, tasks[i].destination.repository, v.destination_digest);
        if (!missing)
          v.error = missing.error().message;
        else
          v.missing = std::move(*missing);
      }
    }));
  for (auto& f : done)
    f.get();
  return out;
}

Summary run_rules(Engine& engine, const std::vector<Rule>& rules, const Defaults& defaults, Expansion& expansion,
                  const std::function<void(Expansion&)>& expanded) {
  engine.prepare(rule_endpoints(rules, defaults));
  TaskFeed feed;
  std::exception_ptr failed;
  Summary summary;
  {
    std::jthread expander([&] {
      try {
        expansion = expand_rules(rules, defaults, engine.tag_lister(), engine.created_lookup(),
                                 [&](const ImageTask& t) { feed.push(t); });
        if (expanded)
          expanded(expansion);
      } catch (...) {
        failed = std::current_exception();
      }
      feed.close();
    });
    summary = engine.run(feed);
  }
  if (failed)
    std::rethrow_exception(failed);
  return summary;
}

nlohmann::json report_json(const Summary& s) {
  nlohmann::json images = nlohmann::json::array();
  for (const auto& r : s.results) {
    std::string status = !r.ok ? "failed" : r.kept ? "kept" : r.planned ? "planned" : r.skipped ? "skipped" : "copied";
    images.push_back({{"source", r.task.source.to_string()},
                      {"destination", r.task.destination.to_string()},
                      {"rule", r.task.rule},
                      {"digest", r.digest},
                      {"replaced", r.replaced.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.replaced)},
                      {"status", status},
                      {"bytes", r.bytes},
                      {"seconds", r.seconds},
                      {"referrers", r.referrers},
                      {"blobs", {{"copied", r.blobs_copied}, {"existed", r.blobs_existed}, {"mounted", r.blobs_mounted},
                                 {"foreign", r.blobs_foreign}}},
                      {"error", r.error.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.error)}});
  }
  return {{"images", images},
          {"totals", {{"images", s.images}, {"failed", s.failed}, {"generateFailed", s.generate_failed},
                      {"bytes", s.bytes}, {"resumedDownloads", s.resumed}, {"seconds", s.seconds}}}};
}

nlohmann::json failed_images_json(const Summary& s, const std::vector<RuleError>& rule_errors) {
  nlohmann::json doc = nlohmann::json::object();
  for (const auto& r : s.results) {
    if (r.ok)
      continue;
    const std::string source = r.task.source.to_string();
    // A destination by digest is written without it: the copy keeps the source's digest anyway.
    const auto& to = r.task.destination;
    const std::string destination = to.name() + (to.tag.empty() ? "" : ":" + to.tag);
    auto it = doc.find(source);
    if (it == doc.end())
      doc[source] = destination;
    else if (it->is_string())
      *it = nlohmann::json::array({*it, destination}); // one source, several destinations: rule 4
    else
      it->push_back(destination);
  }
  // Rules that produced no task because their listing failed or was interrupted: the rule again.
  for (const auto& e : rule_errors)
    if (e.rerun && !doc.contains(e.rule))
      doc[e.rule] = *e.rerun;
  return doc;
}

std::string summary_line(const Summary& s) {
  return "Images(" + std::to_string(s.images) + ") migration finished, " + std::to_string(s.failed) +
         " images tasks failed, " + std::to_string(s.generate_failed) + " tasks generate failed";
}

} // namespace migrate
