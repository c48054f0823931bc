#include "migrate/referrers.hpp"

#include "registry/digest.hpp"
#include "registry/manifest.hpp"
#include "util/json.hpp"
#include "util/text.hpp"

#include <future>
#include <set>

namespace migrate {

using Clock = std::chrono::steady_clock;

ImageTask retarget(const ImageTask& task, const std::string& tag, const std::string& digest) {
  ImageTask t{task.source, task.destination, task.rule};
  t.source.tag = t.destination.tag = tag;
  t.source.digest = t.destination.digest = tag.empty() ? digest : "";
  return t;
}

bool Referrers::none_known_without_asking(const ImageTask& task, const std::string& digest,
                                          const std::string& media_type) {
  auto src = m_run.stores.get(task.source);
  if (!src.store->referrers_api_absent() || !m_run.stores.tags_listed(src, task.source.repository))
    return false;
  auto by_subject = m_run.stores.referrer_tags(src, task.source.repository, m_run.retry); // listed: no request
  if (!by_subject)
    return false;
  const auto& tags_of = **by_subject;
  // An index's images may have referrer tags of their own: then its children must be read. (A type
  // not known to be an image's, e.g. from the other end's answer to a 304, or a generic one, settles
  // nothing when there are such tags.)
  return !tags_of.count(registry::referrers_tag(digest)) &&
         (tags_of.empty() || registry::is_image_manifest_type(media_type));
}

void Referrers::copy(ImageResult& r, int depth) {
  const ImageTask& task = r.task;
  const auto begun = Clock::now();
  auto src_entry = m_run.stores.get(task.source);
  auto dst_entry = m_run.stores.get(task.destination);
  registry::ImageStore& src = *src_entry.store;
  registry::ImageStore& dst = *dst_entry.store;
  const std::string& src_repo = task.source.repository;
  const std::string& dst_repo = task.destination.repository;
  auto fail = [&](const http::Error& e) {
    r.seconds += std::chrono::duration<double>(Clock::now() - begun).count();
    r.ok = false;
    r.error = util::escape_control(e.message);
    r.error_kind = e.kind;
    r.permanent = !e.retryable();
  };
  auto fail_invalid = [&](const std::string& message) { fail(http::make_error(http::ErrorKind::invalid, message)); };

  std::vector<ImageTask> subs;
  auto listed = m_run.retry("referrers of " + task.source.to_string(), [&] { return src.list_referrers(src_repo, r.digest); });
  if (!listed)
    return fail(listed.error());
  std::vector<registry::Referrer> from_api;
  if (*listed) {
    from_api = std::move(**listed);
    for (const auto& ref : from_api)
      subs.push_back(retarget(task, "", ref.digest));
  } else {
    auto by_subject = m_run.stores.referrer_tags(src_entry, src_repo, m_run.retry);
    if (!by_subject)
      return fail(by_subject.error());
    const auto& tags_of = **by_subject;
    // Subjects: the image, and for an index each of its images too (cosign sign --recursive signs
    // them one by one); the children are read only when the repository has such tags to match.
    std::vector<std::string> subjects{r.digest};
    const bool others = tags_of.size() > tags_of.count(registry::referrers_tag(r.digest));
    if (others && depth == 0 && !registry::is_image_manifest_type(r.media_type)) {
      auto index = m_run.retry("manifest " + task.source.to_string(), [&] { return src.get_manifest(src_repo, r.digest); });
      if (!index)
        return fail(index.error());
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
        auto index = m_run.retry("manifest " + task.source.name() + ":" + tag, [&] { return src.get_manifest(src_repo, tag); });
        if (!index)
          return fail(index.error());
        auto parsed = registry::parse_manifest(index->bytes, index->media_type);
        if (!parsed || !parsed->is_index)
          return fail_invalid(task.source.name() + ":" + tag + " is not an image index of referrers");
        for (const auto& child : parsed->manifests)
          subs.push_back(retarget(task, "", child.digest));
      }
    }
    subs.insert(subs.end(), tag_subs.begin(), tag_subs.end());
  }
  if (subs.size() > max_referrers)
    return fail_invalid(task.source.to_string() + " has more than " + std::to_string(max_referrers) +
                        " referrers: not copied");
  for (const auto& sub : subs) {
    // Each referrer once per destination repository and run: a source that names the same ones for
    // every subject (or in a cycle) would otherwise make the work grow with the cube of their number.
    const std::string key = dst_entry.key + "|" + dst_repo + "|" + sub.source.reference();
    std::promise<bool> mine;
    {
      std::lock_guard lock(m_mutex);
      auto [it, first] = m_done.try_emplace(key);
      if (!first) {
        auto other = it->second;
        // In flight (an ancestor of this very copy, or another image's): counted, not waited for.
        const bool ready = other.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
        if (ready && !other.get())
          return fail_invalid("referrer " + sub.source.reference() + " failed (with another image)");
        ++r.referrers;
        continue;
      }
      it->second = mine.get_future().share();
    }
    ImageResult s = m_copy(sub, depth + 1);
    mine.set_value(s.ok);
    if (!s.ok) { // a later pass tries it again
      std::lock_guard lock(m_mutex);
      m_done.erase(key);
    }
    if (m_run.on_result)
      m_run.on_result(s, true, true);
    r.referrers += 1 + s.referrers;
    r.bytes += s.bytes;
    if (!s.ok) {
      auto e = http::make_error(s.error_kind.value_or(http::ErrorKind::invalid),
                                "referrer " + sub.source.reference() + ": " + s.error);
      fail(e);
      r.permanent = s.permanent;
      return;
    }
  }
  if (!from_api.empty() && !m_run.options.dry_run)
    if (auto st = ensure_referrers_tag(dst, dst_entry.key, dst_repo, r.digest, from_api); !st)
      return fail(st.error());
  r.seconds += std::chrono::duration<double>(Clock::now() - begun).count();
}

http::Status Referrers::ensure_referrers_tag(registry::ImageStore& dst, const std::string& dst_key,
                                             const std::string& repo, const std::string& subject,
                                             const std::vector<registry::Referrer>& referrers) {
  auto api = m_run.retry("referrers of " + dst.host() + "/" + repo, [&] { return dst.list_referrers(repo, subject); });
  if (!api)
    return api.error();
  if (*api)
    return {}; // the destination indexes them itself
  const std::string tag = registry::referrers_tag(subject);
  std::mutex* writer;
  {
    std::lock_guard lock(m_mutex);
    auto& slot = m_tag_writers[dst_key + "|" + repo + "|" + tag];
    if (!slot)
      slot = std::make_unique<std::mutex>();
    writer = slot.get();
  }
  std::lock_guard one_writer(*writer); // read, add, write: one at a time per tag
  nlohmann::json index = {{"schemaVersion", 2}, {"mediaType", registry::media::oci_index}, {"manifests", nlohmann::json::array()}};
  auto current = m_run.retry("manifest " + repo + ":" + tag, [&] { return dst.get_manifest(repo, tag); });
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
  return m_run.retry("manifest " + repo + ":" + tag, [&] { return dst.put_manifest(repo, tag, m); });
}

} // namespace migrate
