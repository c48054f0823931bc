#include "migrate/copy_image.hpp"

#include "migrate/tag_digests.hpp"
#include "migrate/tags.hpp"
#include "registry/manifest.hpp"
#include "util/json.hpp"
#include "util/time.hpp"
#include "util/text.hpp"

#include <spdlog/fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <future>
#include <map>
#include <string_view>
#include <tuple>

namespace migrate {

namespace {

using registry::BlobOutcome;
using registry::Descriptor;
using registry::ImageStore;
using Clock = std::chrono::steady_clock;

std::string ref_text(const std::string& repository, const std::string& reference) {
  return repository + (reference.find(':') != std::string::npos ? "@" : ":") + reference;
}

} // namespace

ImageCopier::ImageCopier(RunContext& run)
    : m_run(run), m_referrers(run, [this](const ImageTask& task, int depth) { return copy_image(task, depth); }) {}

ImageResult ImageCopier::copy(const ImageTask& task, const KnownHeads& known) {
  try {
    return copy_image(task, 0, known);
  } catch (const std::exception& e) {
    ImageResult r;
    r.task = task;
    r.error = std::string("unexpected error: ") + e.what();
    r.error_kind = http::ErrorKind::invalid;
    r.permanent = true;
    return r;
  }
}

ImageResult ImageCopier::copy_image(const ImageTask& task, int depth, const KnownHeads& known) {
  ImageResult r = copy_one(task, Clock::now() - known.answered <= KnownHeads::fresh ? known : KnownHeads{}, depth == 0);
  if (r.ok && !r.kept && m_run.options.referrers && !r.filtered && depth < 3 && !m_run.stopped())
    m_referrers.copy(r, depth);
  return r;
}

bool ImageCopier::settled_by(const ImageTask& task, const KnownHeads& known) {
  if (!known.destination || !*known.destination || m_run.options.force)
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
  return !m_run.options.referrers || m_referrers.none_known_without_asking(task, digest, media_type);
}

ImageResult ImageCopier::copy_one(const ImageTask& task, const KnownHeads& known, bool top) {
  ImageResult r;
  r.task = task;
  auto start = Clock::now();
  auto finish = [&](std::string error, http::ErrorKind kind = http::ErrorKind::network, long status = 0) {
    r.ok = error.empty();
    r.error = util::escape_control(error); // a remote party's bytes: one printable line, valid UTF-8
    if (!r.ok)
      r.error_kind = kind;
    // Missing images, refused credentials and bad input fail at once: another pass cannot help.
    http::Error e = http::make_error(kind, "", status);
    r.permanent = !r.ok && kind != http::ErrorKind::digest_mismatch && kind != http::ErrorKind::cancelled && !e.retryable();
    r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return r;
  };
  auto fail = [&](const http::Error& e) { return finish(e.message, e.kind, e.status); };
  if (m_run.stopped())
    return finish("cancelled before it started", http::ErrorKind::cancelled);
  const auto src_entry = m_run.stores.get(task.source);
  const auto dst_entry = m_run.stores.get(task.destination);
  ImageStore* src = src_entry.store;
  ImageStore* dst = dst_entry.store;
  const std::string& src_repo = task.source.repository;
  const std::string& dst_repo = task.destination.repository;
  const std::string src_ref = task.source.reference();
  const std::string dst_ref = task.destination.reference();

  // Two HEADs decide whether there is anything to do; they go to two registries, so in parallel
  // (a re-sync of thousands of images is nothing but these two requests each). Run's first pass
  // may have sent them already, in a batch.
  using Head = http::Result<std::optional<registry::ManifestHead>>;
  std::future<Head> dst_future;
  if (!known.destination)
    dst_future = m_run.scheduler.submit(Scheduler::Lane::lookups, [&] {
      return m_run.retry("destination " + task.destination.to_string(), [&] { return dst->head_manifest(dst_repo, dst_ref); },
                         known.destination_failed ? &*known.destination_failed : nullptr);
    });
  // The HEAD refers to this frame: whatever way it is left, not before the HEAD is done.
  auto wait_head = std::unique_ptr<std::future<Head>, void (*)(std::future<Head>*)>(&dst_future, [](auto* f) {
    if (f->valid())
      f->wait();
  });
  std::string src_digest = task.source.digest;
  if (src_digest.empty()) {
    Head head = known.source ? Head(*known.source)
                             : m_run.retry("source " + task.source.to_string(),
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
  if (m_run.tag_digests && top && task.source.digest.empty())
    m_run.tag_digests->remember(task.source.to_string(), src_digest);
  if (*dst_head && (*dst_head)->digest == src_digest && !m_run.options.force) {
    m_run.log->debug("{}: the destination has {} already: skipped", task.destination.to_string(), src_digest);
    r.skipped = true;
    return finish("");
  }
  m_run.log->debug("{}: the destination has {}: copying {}", task.destination.to_string(),
                   *dst_head ? (*dst_head)->digest : std::string("nothing"), src_digest);

  auto manifest = m_run.retry("manifest " + task.source.to_string(), [&] { return src->get_manifest(src_repo, src_digest); });
  if (!manifest)
    return fail(manifest.error());
  r.media_type = manifest->media_type;
  const auto& platforms = m_run.options.platforms;
  if (!platforms.empty() && registry::is_index_type(manifest->media_type)) {
    auto filtered = registry::filter_index(*manifest, platforms);
    if (!filtered)
      return fail(filtered.error().context(task.source.to_string()));
    if (*filtered) {
      if (!m_run.options.filter_index)
        return finish(task.source.to_string() + " has platforms outside --platforms; copying its index whole keeps the "
                                                "digest: add --filter-index to write a filtered index (a new digest)",
                      http::ErrorKind::invalid);
      m_run.log->warn("{}: writing a FILTERED index with only {}: digest {} becomes {}", task.source.to_string(),
                      fmt::join(platforms, ","), src_digest, (*filtered)->digest);
      *manifest = std::move(**filtered);
      r.digest = manifest->digest;
      r.filtered = true;
      if (*dst_head && (*dst_head)->digest == r.digest && !m_run.options.force) {
        r.skipped = true;
        return finish("");
      }
    }
  }
  if (*dst_head && (*dst_head)->digest != r.digest) {
    r.replaced = (*dst_head)->digest;
    if (m_run.options.no_overwrite) {
      r.kept = true;
      return finish("");
    }
  }
  std::vector<Descriptor> blobs;
  std::vector<PendingManifest> children;
  TreeBudget budget;
  if (auto st = collect(*src, src_repo, *manifest, blobs, children, 0, budget); !st)
    return fail(st.error().context("reading " + task.source.to_string()));

  if (m_run.options.dry_run) {
    if (auto st = plan_blobs(r, dst_entry, dst_repo, blobs); !st)
      return fail(st.error());
    r.planned = true;
    return finish("");
  }
  if (auto st = transfer_blobs(r, *src, src_repo, dst_entry, dst_repo, blobs); !st)
    return fail(st.error());

  // Children first (by digest), then the top manifest under its tag.
  for (const auto& child : children) {
    auto st = m_run.retry("manifest " + child.reference.substr(0, 19),
                          [&] { return dst->put_manifest(dst_repo, child.reference, child.manifest); });
    if (!st)
      return fail(st.error());
  }
  auto st = m_run.retry("manifest " + ref_text(dst_repo, dst_ref), [&] { return dst->put_manifest(dst_repo, dst_ref, *manifest); });
  if (!st)
    return fail(st.error());
  return finish("");
}

namespace {
/// One blob's outcome in the image's counters (copied, planned or found).
void count_blob(ImageResult& r, const BlobStat& blob) {
  r.bytes += blob.bytes;
  switch (blob.outcome) {
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

/// The distinct blobs of a tree, in their first order. A digest listed both as a foreign layer and
/// as an ordinary one is an ordinary one: the destination will want its bytes.
std::vector<const Descriptor*> distinct_blobs(const std::vector<Descriptor>& blobs) {
  std::vector<const Descriptor*> distinct;
  std::map<std::string_view, std::size_t> position;
  for (const auto& b : blobs) {
    auto [it, fresh] = position.try_emplace(b.digest, distinct.size());
    if (fresh)
      distinct.push_back(&b);
    else if (distinct[it->second]->non_distributable() && !b.non_distributable())
      distinct[it->second] = &b;
  }
  return distinct;
}

/// Waits for every job still holding a future in the vectors (jobs that refer to the caller's
/// frame), whatever ends the frame; first it sets `abandoned`, which the jobs not yet started check:
/// an exception must neither leave them running over the frame nor wait for them to do their work.
template <class... Vectors> class JoinOnExit {
public:
  explicit JoinOnExit(std::atomic<bool>& abandoned, Vectors&... vectors) : m_abandoned(abandoned), m_vectors(vectors...) {}
  JoinOnExit(const JoinOnExit&) = delete;
  JoinOnExit& operator=(const JoinOnExit&) = delete;
  ~JoinOnExit() {
    m_abandoned = true;
    std::apply([](auto&... v) { (wait_all(v), ...); }, m_vectors);
  }

private:
  template <class V> static void wait_all(V& futures) {
    for (auto& f : futures)
      if (f.valid())
        f.wait();
  }
  std::atomic<bool>& m_abandoned;
  std::tuple<Vectors&...> m_vectors;
};
} // namespace

http::Status ImageCopier::transfer_blobs(ImageResult& r, ImageStore& src, const std::string& src_repo,
                                         const Stores::Entry& dst, const std::string& dst_repo,
                                         const std::vector<Descriptor>& blobs) {
  // The blobs are looked for at the destination on the lane of short requests, many at once (a
  // bounded window per image: a manifest may list any number); those missing go to the blobs lane,
  // whose places are for mounts and copies only (far from a registry, a HEAD there would hold a
  // transfer's place for a round trip or two).
  static constexpr std::size_t checks_ahead = 16, transfers_ahead = 32;
  ++m_run.progress.images_planned;
  const auto distinct = distinct_blobs(blobs);
  auto size_of = [](const Descriptor& b) {
    return b.non_distributable() ? 0 : static_cast<std::uint64_t>(std::max<std::int64_t>(0, b.size));
  };
  for (const Descriptor* b : distinct)
    m_run.progress.bytes_planned += size_of(*b);
  std::vector<std::future<http::Result<std::optional<BlobStat>>>> checks(distinct.size());
  std::vector<std::future<http::Result<BlobStat>>> transfers;
  std::vector<std::uint64_t> transfer_sizes;
  transfers.reserve(distinct.size()); // a push_back that throws would lose a queued job's future
  transfer_sizes.reserve(distinct.size());
  std::atomic<bool> abandoned = false;
  JoinOnExit join(abandoned, checks, transfers);
  auto start_check = [&](std::size_t i) {
    checks[i] = m_run.scheduler.submit(Scheduler::Lane::lookups, [this, &abandoned, &dst, &dst_repo, &b = *distinct[i]] {
      if (m_run.stopped() || abandoned)
        return http::Result<std::optional<BlobStat>>(http::make_error(http::ErrorKind::cancelled, "cancelled"));
      return m_run.blobs.check(*dst.store, dst.key, dst_repo, b);
    });
  };
  for (std::size_t i = 0; i < std::min(checks_ahead, distinct.size()); ++i)
    start_check(i);

  std::optional<http::Error> first_error;
  int failed = 0;
  auto settle = [&](std::uint64_t size, const http::Result<BlobStat>& res) {
    m_run.progress.bytes_settled += size; // done, present, mounted, foreign or failed: no longer ahead
    if (res) {
      count_blob(r, *res);
    } else if (++failed == 1) {
      first_error = res.error();
    }
  };
  std::size_t settled = 0; // transfers settled, in order
  for (std::size_t i = 0; i < distinct.size(); ++i) {
    auto found = checks[i].get();
    if (i + checks_ahead < distinct.size())
      start_check(i + checks_ahead);
    const Descriptor& b = *distinct[i];
    if (!found) {
      settle(size_of(b), found.error());
    } else if (*found) {
      settle(size_of(b), **found);
    } else {
      for (; transfers.size() - settled >= transfers_ahead; ++settled)
        settle(transfer_sizes[settled], transfers[settled].get());
      transfer_sizes.push_back(size_of(b));
      transfers.push_back(m_run.scheduler.submit(Scheduler::Lane::blobs, [this, &abandoned, &src, &src_repo, &dst,
                                                                          &dst_repo, &b] {
        if (m_run.stopped() || abandoned)
          return http::Result<BlobStat>(http::make_error(http::ErrorKind::cancelled, "cancelled"));
        return m_run.blobs.ensure(src, src_repo, *dst.store, dst.key, dst_repo, b, true);
      }));
    }
  }
  for (; settled < transfers.size(); ++settled)
    settle(transfer_sizes[settled], transfers[settled].get());
  if (failed > 0) {
    http::Error e = *first_error;
    e.message = std::to_string(failed) + " of " + std::to_string(distinct.size()) + " blobs failed, first: " + e.message;
    return e;
  }
  return {};
}

http::Status ImageCopier::plan_blobs(ImageResult& r, const Stores::Entry& dst, const std::string& dst_repo,
                                     const std::vector<Descriptor>& blobs) {
  for (const Descriptor* b : distinct_blobs(blobs)) {
    auto planned = m_run.blobs.plan(*dst.store, dst.key, dst_repo, *b);
    if (!planned)
      return planned.error();
    count_blob(r, *planned);
  }
  return {};
}

http::Status ImageCopier::collect(ImageStore& src, const std::string& src_repo, const registry::Manifest& manifest,
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
    auto m = m_run.retry("manifest " + child.digest.substr(0, 19), [&] { return src.get_manifest(src_repo, child.digest); });
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

http::Result<std::vector<std::string>> ImageCopier::missing_parts(ImageStore& store, const std::string& repo,
                                                                  const std::string& digest) {
  auto top = m_run.retry("manifest " + repo + "@" + digest.substr(0, 19), [&] { return store.get_manifest(repo, digest); });
  if (!top)
    return top.error();
  std::vector<Descriptor> blobs;
  std::vector<PendingManifest> children;
  TreeBudget budget;
  if (auto st = collect(store, repo, *top, blobs, children, 0, budget); !st) {
    if (st.error().kind == http::ErrorKind::not_found)
      return std::vector<std::string>{st.error().message};
    return st.error();
  }
  std::vector<std::string> missing;
  std::set<std::string> seen;
  for (const auto& b : blobs) {
    if (b.non_distributable() || !seen.insert(b.digest).second)
      continue;
    auto exists = m_run.retry("blob " + b.digest.substr(0, 19), [&] { return store.blob_exists(repo, b.digest); });
    if (!exists)
      return exists.error();
    if (!*exists)
      missing.push_back(b.digest);
  }
  return missing;
}

http::Result<std::optional<double>> ImageCopier::created_of(ImageStore& store, const std::string& repo,
                                                            const std::string& tag) {
  try {
    return created_of_unguarded(store, repo, tag);
  } catch (const std::exception& e) {
    return http::make_error(http::ErrorKind::invalid, repo + ":" + tag + ": unexpected error: " + e.what());
  }
}

http::Result<std::optional<double>> ImageCopier::created_of_unguarded(ImageStore& store, const std::string& repo,
                                                                      const std::string& tag) {
  auto m = m_run.retry("manifest " + repo + ":" + tag, [&] { return store.get_manifest(repo, tag); });
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
    m = m_run.retry("manifest " + pick->digest.substr(0, 19), [&] { return store.get_manifest(repo, pick->digest); });
    if (!m)
      return m.error();
    parsed = registry::parse_manifest(m->bytes, m->media_type);
    if (!parsed)
      return parsed.error();
  }
  if (!parsed->config || parsed->config->size > (4 << 20))
    return std::optional<double>();
  std::string config;
  auto read = m_run.retry("config of " + repo + ":" + tag, [&] {
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
      return util::parse_rfc3339(j["created"].get<std::string>());
  } catch (const nlohmann::json::exception&) {
  }
  return std::optional<double>();
}

} // namespace migrate
