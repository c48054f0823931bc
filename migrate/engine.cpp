#include "migrate/engine.hpp"

#include "migrate/copy_image.hpp"
#include "migrate/head_prefetch.hpp"
#include "migrate/run_context.hpp"
#include "migrate/task_slots.hpp"
#include "registry/client.hpp"
#include "util/text.hpp"

#include <spdlog/spdlog.h>

#include <future>
#include <thread>

namespace migrate {

namespace {
using Clock = std::chrono::steady_clock;
} // namespace

std::string EngineOptions::validate() const {
  if (workers < 1 || workers > 256)
    return "--workers must be between 1 and 256, not " + std::to_string(workers);
  if (retries < 0 || retries > 100)
    return "--retries must be between 0 and 100, not " + std::to_string(retries);
  if (attempts < 1)
    return "attempts must be at least 1";
  if (filter_index && platforms.empty())
    return "--filter-index needs --platforms";
  return {};
}

void TaskFeed::push(ImageTask task) {
  {
    std::unique_lock lock(m_mutex);
    if (m_limit)
      m_cv.wait(lock, [&] { return m_queue.size() < m_limit || m_closed; });
    if (m_closed)
      return; // the run is over (it threw): nobody takes it, and the producer must not wait
    m_queue.push_back(std::move(task));
  }
  m_cv.notify_all();
}

void TaskFeed::unlimit() {
  {
    std::lock_guard lock(m_mutex);
    m_limit = 0;
  }
  m_cv.notify_all();
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
  if (m_limit)
    m_cv.notify_all(); // a push may be waiting for room
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

struct Engine::Impl {
  http::Client& client;
  AuthConfig auth;
  EngineOptions options;
  EngineContext context;
  Stores stores;
  Scheduler scheduler;
  Retrier retry;
  Progress progress;
  BlobCopier blobs;
  RunContext run;
  ImageCopier copier;
  std::vector<registry::Reference> endpoints; ///< every rule's repositories, from prepare()

  Impl(http::Client& c, AuthConfig a, EngineOptions o, EngineContext ctx)
      : client(c), auth(std::move(a)), options(std::move(o)), context(std::move(ctx)),
        stores(client, auth, context.env, context.cancel, log(), context.make_store),
        scheduler(options.workers), retry(options.attempts, options.backoff, context.cancel, log()),
        blobs(retry, progress, context.blob_locations),
        run{options, stores, scheduler, retry, blobs, progress, context.tag_digests, context.on_result, log()},
        copier(run) {}

  std::shared_ptr<spdlog::logger> log() const { return context.log ? context.log : registry::null_logger(); }
  bool stopped() const { return context.cancel && context.cancel->stopped(); }

  std::mutex final_mutex; ///< finish(): the totals and the final sink, one task at a time
  std::uint64_t final_bytes = 0;
  std::size_t final_failed = 0;

  /// One task of a pass: its copy, the counters, and its result to the sinks.
  void run_task(TaskSlots& slots, std::size_t i, int pass, const KnownHeads& known = {}) {
    auto& slot = *slots.at(i);
    auto& result = slot.result;
    result = copier.copy(slot.task, known);
    result.pass = pass;
    if (result.skipped || result.kept)
      ++progress.images_planned; // no bytes to move: part of the progress's average all the same
    // A stopped run has no later pass: its failures are final, and the progress says so.
    const bool last = result.ok || result.permanent || pass >= options.retries || stopped();
    if (last)
      ++progress.images_done;
    if (!result.ok && last)
      ++progress.images_failed;
    if (run.on_result)
      run.on_result(result, false, last);
    if (last)
      finish(slots, i);
  }

  /// Task i's result is final: counted, to the final sink, and let go when it went there and ended well.
  void finish(TaskSlots& slots, std::size_t i) {
    auto& slot = *slots.at(i);
    std::lock_guard lock(final_mutex);
    slot.final = true;
    final_bytes += slot.result.bytes;
    final_failed += !slot.result.ok;
    if (!context.on_final)
      return;
    context.on_final(slot.result);
    if (slot.result.ok)
      slots.release(i);
  }
};

Engine::Engine(http::Client& client, AuthConfig auth, EngineOptions options, EngineContext context)
    : m_impl(std::make_unique<Impl>(client, std::move(auth), std::move(options), std::move(context))) {}

Engine::~Engine() = default;

TagLister Engine::tag_lister() {
  return [this](const registry::Reference& ref) -> http::Result<std::vector<std::string>> {
    if (m_impl->stopped()) // interrupted: rules not yet expanded start nothing new
      return http::make_error(http::ErrorKind::cancelled, "listing tags of " + ref.name() + ": interrupted");
    return m_impl->stores.tags(m_impl->stores.get(ref), ref.repository, m_impl->retry);
  };
}

CreatedLookup Engine::created_lookup() {
  return [this](const registry::Reference& ref, const std::vector<std::string>& tags)
             -> http::Result<std::map<std::string, double>> {
    if (m_impl->stopped())
      return http::make_error(http::ErrorKind::cancelled, "reading creation times in " + ref.name() + ": interrupted");
    auto* store = m_impl->stores.get(ref).store;
    std::map<std::string, double> times;
    // 8 at a time: each reads a manifest and a config, which Docker Hub counts as pulls.
    for (std::size_t from = 0; from < tags.size(); from += 8) {
      std::vector<std::pair<std::string, std::future<http::Result<std::optional<double>>>>> running;
      for (std::size_t i = from; i < std::min(tags.size(), from + 8); ++i)
        running.emplace_back(tags[i], m_impl->scheduler.submit(Scheduler::Lane::lookups, [this, store, &ref, tag = tags[i]] {
                               return m_impl->copier.created_of(*store, ref.repository, tag);
                             }));
      std::optional<http::Error> failed; // every job of the batch is waited for: they hold `ref`
      for (auto& [tag, f] : running) {
        auto t = f.get();
        if (failed)
          continue;
        if (!t && (t.error().kind == http::ErrorKind::not_found || t.error().kind == http::ErrorKind::unsupported ||
                   t.error().kind == http::ErrorKind::invalid)) {
          // Deleted since the listing, schema 1, not an image: no time, so it ranks as the oldest.
          m_impl->log()->warn("{}:{}: no creation time ({}); it counts as the oldest for \"latest\"", ref.name(), tag,
                              t.error().message);
          continue;
        }
        if (!t) {
          failed = t.error().context("reading when " + ref.name() + ":" + tag + " was created (for \"latest\")");
          continue;
        }
        if (*t)
          times.emplace(tag, **t);
      }
      if (failed)
        return *failed;
    }
    return times;
  };
}

CatalogLister Engine::catalog_lister() {
  return [this](const std::string& host, const std::string& ns) {
    registry::Reference any;
    any.registry = host;
    any.repository = ns;
    auto* store = m_impl->stores.get(any).store;
    return m_impl->retry("listing the catalog of " + host, [&] { return store->list_repositories(ns); });
  };
}

Expansion Engine::expand(const std::vector<Rule>& rules, const Defaults& defaults,
                         const std::function<void(const ImageTask&)>& on_task) {
  return expand_rules(rules, defaults, tag_lister(), created_lookup(), on_task, &m_impl->scheduler);
}

void Engine::prepare(const std::vector<registry::Reference>& refs) {
  for (const auto& ref : refs)
    m_impl->stores.get(ref);
  m_impl->endpoints = refs;
}

Summary Engine::run(TaskFeed& feed) {
  auto& impl = *m_impl;
  const auto start = Clock::now();
  impl.final_bytes = 0;
  impl.final_failed = 0;
  TaskSlots slots;
  // However the run ends, an expansion waiting for room in the feed is let go (normally the feed is
  // closed already: the run returns only after that).
  struct CloseFeed {
    TaskFeed& feed;
    ~CloseFeed() { feed.close(); }
  } close_feed{feed};
  {
    HeadPrefetch pass1(impl.run, impl.copier, impl.client, impl.endpoints,
                       [&](std::size_t i, const KnownHeads& known) { impl.run_task(slots, i, 0, known); });
    pass1.run(feed, slots);
  }
  // Later passes: the tasks that failed for a reason another try may get past.
  std::vector<std::size_t> pending;
  for (std::size_t i = 0; i < slots.size(); ++i)
    if (auto* s = slots.at(i); s && !s->final)
      pending.push_back(i);
  for (int pass = 1; !pending.empty() && pass <= impl.options.retries && !impl.stopped(); ++pass) {
    impl.log()->warn("pass {}: retrying {} failed image task(s)", pass + 1, pending.size());
    std::vector<std::future<void>> done;
    for (auto i : pending)
      done.push_back(impl.scheduler.submit(Scheduler::Lane::images, [&, i, pass] { impl.run_task(slots, i, pass); }));
    for (auto& f : done)
      f.get();
    std::erase_if(pending, [&](std::size_t i) {
      const auto* s = slots.at(i);
      return !s || s->final; // let go (it ended well) or ended for good
    });
  }
  // Stopped between passes: what failed and was not final yet is now.
  for (auto i : pending)
    impl.finish(slots, i);
  Summary summary;
  summary.images = slots.size();
  summary.resumed = impl.stores.resumed_downloads();
  summary.bytes = impl.final_bytes;
  summary.failed = impl.final_failed;
  for (std::size_t i = 0; i < slots.size(); ++i)
    if (auto* s = slots.at(i))
      summary.results.push_back(std::move(s->result));
  summary.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return summary;
}

Summary Engine::run_while(TaskFeed& feed, const std::function<void()>& expand) {
  std::exception_ptr failed;
  const auto caller = std::this_thread::get_id();
  auto expanding = m_impl->scheduler.submit(Scheduler::Lane::rules, [&] {
    // No thread to be had (a pids limit): the expansion runs here, before the run that takes its
    // tasks, so it must not wait for room in the feed.
    if (std::this_thread::get_id() == caller)
      feed.unlimit();
    try {
      expand();
    } catch (...) {
      failed = std::current_exception();
    }
    feed.close();
  });
  Summary summary;
  try {
    summary = run(feed);
  } catch (...) {
    // The expansion uses the feed and this frame: it ends (its pushes now return) before they go.
    feed.close();
    expanding.wait();
    throw;
  }
  expanding.get();
  if (failed)
    std::rethrow_exception(failed);
  return summary;
}

const Progress& Engine::progress() const { return m_impl->progress; }

std::vector<VerifyResult> Engine::verify(const std::vector<ImageTask>& tasks, bool deep) {
  auto& impl = *m_impl;
  std::vector<VerifyResult> out(tasks.size());
  auto compare_raw = [&](std::size_t i) {
    auto& v = out[i];
    const ImageTask& task = tasks[i];
    v.task = task;
    auto* src = impl.stores.get(task.source).store;
    auto* dst = impl.stores.get(task.destination).store;
    auto s = impl.retry("source " + task.source.to_string(),
                        [&] { return src->head_manifest(task.source.repository, task.source.reference()); });
    if (!s) {
      v.error = s.error().message;
      return;
    }
    v.source_digest = *s ? (*s)->digest : "";
    if (!*s)
      v.error = "source image not found";
    auto d = impl.retry("destination " + task.destination.to_string(),
                        [&] { return dst->head_manifest(task.destination.repository, task.destination.reference()); });
    if (!d) {
      v.error = d.error().message;
      return;
    }
    v.destination_digest = *d ? (*d)->digest : "";
    if (!v.same() && !v.destination_digest.empty() && !v.source_digest.empty() && !impl.options.platforms.empty()) {
      // Copied with --platforms --filter-index: the destination holds the source's index filtered.
      auto m = impl.retry("manifest " + task.source.to_string(),
                          [&] { return src->get_manifest(task.source.repository, v.source_digest); });
      if (!m) {
        v.error = m.error().message;
        return;
      }
      if (registry::is_index_type(m->media_type))
        if (auto filtered = registry::filter_index(*m, impl.options.platforms);
            filtered && *filtered && (*filtered)->digest == v.destination_digest)
          v.filtered_digest = (*filtered)->digest;
    }
    if (deep && v.same()) {
      auto missing = impl.copier.missing_parts(*dst, task.destination.repository, v.destination_digest);
      if (!missing)
        v.error = missing.error().message;
      else
        v.missing = std::move(*missing);
    }
  };
  std::vector<std::future<void>> done;
  for (std::size_t i = 0; i < tasks.size(); ++i)
    done.push_back(impl.scheduler.submit(Scheduler::Lane::images, [&, i] { // --workers comparisons at once
      try {
        compare_raw(i);
      } catch (const std::exception& e) {
        out[i].error = std::string("unexpected error: ") + e.what();
      }
      out[i].error = util::escape_control(out[i].error); // a remote party's bytes: valid UTF-8, one line
    }));
  for (auto& f : done)
    f.get();
  return out;
}

Summary run_rules(Engine& engine, const std::vector<Rule>& rules, const Defaults& defaults, Expansion& expansion,
                  const std::function<void(Expansion&)>& expanded, const std::function<void(const ImageTask&)>& on_task) {
  engine.prepare(rule_endpoints(rules, defaults));
  TaskFeed feed(1024);
  return engine.run_while(feed, [&] {
    expansion = engine.expand(rules, defaults, [&](const ImageTask& t) {
      if (on_task)
        on_task(t);
      feed.push(t);
    });
    if (expanded)
      expanded(expansion);
  });
}

} // namespace migrate
