#include "migrate/blobs.hpp"

#include "registry/digest.hpp"

#include <algorithm>

namespace migrate {

using registry::BlobOutcome;

BlobCopier::Flight::Flight(BlobCopier& owner, std::string key) : m_owner(owner), m_key(std::move(key)) {
  std::lock_guard lock(m_owner.m_mutex);
  auto it = m_owner.m_in_flight.find(m_key);
  if (it == m_owner.m_in_flight.end())
    m_owner.m_in_flight.emplace(m_key, m_mine.get_future().share());
  else
    m_other = it->second;
}

BlobCopier::Flight::~Flight() {
  if (m_other.valid())
    return;
  std::lock_guard lock(m_owner.m_mutex);
  m_owner.m_in_flight.erase(m_key);
  m_mine.set_value();
}

bool BlobCopier::Flight::wait_for_owner() {
  if (!m_other.valid())
    return false;
  m_other.wait();
  return true;
}

std::uint32_t BlobCopier::name_number(const std::string& name) {
  auto [it, fresh] = m_numbers.try_emplace(name, static_cast<std::uint32_t>(m_names.size()));
  if (fresh)
    m_names.push_back(&it->first);
  return it->second;
}

BlobCopier::BlobKey BlobCopier::blob_key(const std::string& dst_key, const std::string& digest) {
  BlobKey key;
  key.registry = name_number(dst_key);
  if (auto bytes = registry::sha256_bytes(digest))
    key.sha256 = *bytes;
  else
    key.other = 1 + name_number(digest);
  return key;
}

bool BlobCopier::known_present(const std::string& dst_key, const std::string& repo, const std::string& digest) {
  std::lock_guard lock(m_mutex);
  auto it = m_where.find(blob_key(dst_key, digest));
  if (it == m_where.end())
    return false;
  const std::uint32_t wanted = name_number(repo);
  const Where& where = it->second;
  return where.latest == wanted ||
         (where.more && std::binary_search(m_more[where.more - 1].begin(), m_more[where.more - 1].end(), wanted));
}

void BlobCopier::remember(const std::string& dst_key, registry::ImageStore& dst, const std::string& repo,
                          const registry::Descriptor& blob) {
  if (m_memory)
    m_memory->remember(dst.host(), blob.digest, repo); // kept only for registries (a layout's host is no host name)
  std::lock_guard lock(m_mutex);
  const std::uint32_t here = name_number(repo);
  auto [it, fresh] = m_where.try_emplace(blob_key(dst_key, blob.digest), Where{here, 0});
  Where& where = it->second;
  if (fresh || where.latest == here)
    return;
  // Mounts come from the latest; the others stay known present.
  if (!where.more) {
    m_more.emplace_back();
    where.more = static_cast<std::uint32_t>(m_more.size());
  }
  auto& more = m_more[where.more - 1]; // sorted: a base layer may be in thousands of repositories
  if (auto old = std::lower_bound(more.begin(), more.end(), here); old != more.end() && *old == here)
    more.erase(old);
  more.insert(std::lower_bound(more.begin(), more.end(), where.latest), where.latest);
  where.latest = here;
}

std::pair<std::string, bool> BlobCopier::mount_source(const std::string& dst_key, registry::ImageStore& dst,
                                                      const std::string& dst_repo, registry::ImageStore& src,
                                                      const std::string& src_repo, const registry::Descriptor& blob) {
  {
    std::lock_guard lock(m_mutex);
    if (auto it = m_where.find(blob_key(dst_key, blob.digest)); it != m_where.end()) {
      const std::string& latest = *m_names[it->second.latest];
      if (latest != dst_repo)
        return {latest, false};
    }
  }
  if (src.host() == dst.host() && src_repo != dst_repo)
    return {src_repo, false}; // a copy inside one registry never needs the bytes to travel
  if (auto seen = remembered(dst, dst_repo, blob))
    return {*seen, true};
  return {"", false};
}

std::optional<std::string> BlobCopier::remembered(registry::ImageStore& dst, const std::string& dst_repo,
                                                  const registry::Descriptor& blob) {
  if (!m_memory)
    return std::nullopt;
  auto seen = m_memory->find(dst.host(), blob.digest);
  return seen && *seen != dst_repo ? seen : std::nullopt;
}

http::Result<BlobStat> BlobCopier::ensure(registry::ImageStore& src, const std::string& src_repo,
                                          registry::ImageStore& dst, const std::string& dst_key,
                                          const std::string& dst_repo, const registry::Descriptor& blob,
                                          bool checked) {
  if (blob.non_distributable())
    return BlobStat{BlobOutcome::skipped_foreign, 0};
  if (known_present(dst_key, dst_repo, blob.digest))
    return BlobStat{BlobOutcome::existed, 0};
  Flight repo_flight(*this, dst_key + "|" + dst_repo + "|" + blob.digest);
  if (repo_flight.wait_for_owner()) {
    if (known_present(dst_key, dst_repo, blob.digest))
      return BlobStat{BlobOutcome::existed, 0};
    checked = false; // the owner failed, perhaps after its bytes arrived: ask again
  }
  // After another repository's copy, check()'s answer for dst_repo stands: the blob is mounted from
  // there (a registry whose HEAD answers for all its repositories takes the mount of a blob it has).
  Flight registry_flight(*this, dst_key + "|" + blob.digest);
  registry_flight.wait_for_owner();
  return ensure_once(src, src_repo, dst, dst_key, dst_repo, blob, checked);
}

http::Result<std::optional<BlobStat>> BlobCopier::check(registry::ImageStore& dst, const std::string& dst_key,
                                                        const std::string& dst_repo, const registry::Descriptor& blob) {
  if (blob.non_distributable())
    return std::optional(BlobStat{BlobOutcome::skipped_foreign, 0});
  if (known_present(dst_key, dst_repo, blob.digest))
    return std::optional(BlobStat{BlobOutcome::existed, 0});
  const std::string what = "blob " + blob.digest.substr(0, 19) + " -> " + dst.host() + "/" + dst_repo;
  auto exists = m_retry(what, [&] { return dst.blob_exists(dst_repo, blob.digest); });
  if (!exists)
    return exists.error();
  if (!*exists)
    return std::optional<BlobStat>();
  m_retry.log().debug("{}: already there", what);
  remember(dst_key, dst, dst_repo, blob);
  return std::optional(BlobStat{BlobOutcome::existed, 0});
}

http::Result<BlobStat> BlobCopier::ensure_once(registry::ImageStore& src, const std::string& src_repo,
                                               registry::ImageStore& dst, const std::string& dst_key,
                                               const std::string& dst_repo, const registry::Descriptor& blob,
                                               bool checked) {
  const std::string what = "blob " + blob.digest.substr(0, 19) + " -> " + dst.host() + "/" + dst_repo;
  if (!checked) {
    auto found = check(dst, dst_key, dst_repo, blob);
    if (!found)
      return found.error();
    if (*found)
      return **found;
  }
  auto [from, remembered] = mount_source(dst_key, dst, dst_repo, src, src_repo, blob);
  if (!from.empty()) {
    auto mounted = m_retry(what, [&] { return dst.mount_blob(dst_repo, blob.digest, from); });
    if (mounted && *mounted) {
      m_retry.log().debug("{}: mounted from {}{}", what, from, remembered ? " (where an earlier run saw it)" : "");
      remember(dst_key, dst, dst_repo, blob);
      return BlobStat{BlobOutcome::mounted, 0};
    }
    // Refused (the repository is gone, or these credentials cannot read it) or failed: the bytes
    // are copied instead. A mount is never the only way a blob can arrive. A remembered place the
    // registry refused is forgotten (the copy below puts the new one there).
    if (remembered && mounted && m_memory)
      m_memory->forget(dst.host(), blob.digest);
    m_retry.log().debug("{}: mount from {}{} {}, copying", what, from, remembered ? " (an earlier run's)" : "",
                        mounted ? "refused" : "failed: " + mounted.error().message);
  }
  m_retry.log().debug("{}: copying {} bytes from {}/{}", what, blob.size, src.host(), src_repo);
  auto copied = m_retry(what, [&] {
    return dst.copy_blob_from(src, src_repo, dst_repo, blob, [this](std::size_t n) { m_progress.bytes += n; });
  });
  if (!copied)
    return copied.error();
  remember(dst_key, dst, dst_repo, blob);
  return BlobStat{BlobOutcome::copied, *copied};
}

http::Result<BlobStat> BlobCopier::plan(registry::ImageStore& dst, const std::string& dst_key,
                                        const std::string& dst_repo, const registry::Descriptor& blob) {
  if (blob.non_distributable())
    return BlobStat{BlobOutcome::skipped_foreign, 0};
  auto exists = m_retry("blob " + blob.digest.substr(0, 19), [&] { return dst.blob_exists(dst_repo, blob.digest); });
  if (!exists)
    return exists.error();
  if (*exists)
    return BlobStat{BlobOutcome::existed, 0};
  if (remembered(dst, dst_repo, blob))
    return BlobStat{BlobOutcome::mounted, 0}; // where an earlier run saw it (unless the registry refuses)
  std::lock_guard lock(m_mutex);
  if (m_planned.insert(dst_key + "|" + blob.digest).second)
    return BlobStat{BlobOutcome::copied, static_cast<std::uint64_t>(blob.size)};
  return BlobStat{BlobOutcome::mounted, 0}; // another image of this run brings it: a mount
}

} // namespace migrate
