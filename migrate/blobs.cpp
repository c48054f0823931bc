#include "migrate/blobs.hpp"

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

bool BlobCopier::known_present(const std::string& repo_key) {
  std::lock_guard lock(m_mutex);
  return m_present.count(repo_key) > 0;
}

void BlobCopier::remember(const std::string& key, registry::ImageStore& dst, const std::string& repo,
                          const registry::Descriptor& blob) {
  if (m_memory)
    m_memory->remember(dst.host(), blob.digest, repo); // kept only for registries (a layout's host is no host name)
  std::lock_guard lock(m_mutex);
  m_location.insert_or_assign(key, repo);
  auto bar = key.rfind('|');
  m_present.insert(key.substr(0, bar) + "|" + repo + key.substr(bar)); // dst_key|repo|digest
}

std::pair<std::string, bool> BlobCopier::mount_source(const std::string& key, registry::ImageStore& dst,
                                                      const std::string& dst_repo, registry::ImageStore& src,
                                                      const std::string& src_repo, const registry::Descriptor& blob) {
  {
    std::lock_guard lock(m_mutex);
    if (auto it = m_location.find(key); it != m_location.end() && it->second != dst_repo)
      return {it->second, false};
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
                                          const std::string& dst_repo, const registry::Descriptor& blob) {
  if (blob.non_distributable())
    return BlobStat{BlobOutcome::skipped_foreign, 0};
  const std::string repo_key = dst_key + "|" + dst_repo + "|" + blob.digest;
  if (known_present(repo_key))
    return BlobStat{BlobOutcome::existed, 0};
  Flight repo_flight(*this, repo_key);
  if (repo_flight.wait_for_owner() && known_present(repo_key))
    return BlobStat{BlobOutcome::existed, 0};
  Flight registry_flight(*this, dst_key + "|" + blob.digest);
  registry_flight.wait_for_owner();
  return ensure_once(src, src_repo, dst, dst_key + "|" + blob.digest, dst_repo, blob);
}

http::Result<BlobStat> BlobCopier::ensure_once(registry::ImageStore& src, const std::string& src_repo,
                                               registry::ImageStore& dst, const std::string& key,
                                               const std::string& dst_repo, const registry::Descriptor& blob) {
  const std::string what = "blob " + blob.digest.substr(0, 19) + " -> " + dst.host() + "/" + dst_repo;
  auto exists = m_retry(what, [&] { return dst.blob_exists(dst_repo, blob.digest); });
  if (!exists)
    return exists.error();
  if (*exists) {
    m_retry.log().debug("{}: already there", what);
    remember(key, dst, dst_repo, blob);
    return BlobStat{BlobOutcome::existed, 0};
  }
  auto [from, remembered] = mount_source(key, dst, dst_repo, src, src_repo, blob);
  if (!from.empty()) {
    auto mounted = m_retry(what, [&] { return dst.mount_blob(dst_repo, blob.digest, from); });
    if (mounted && *mounted) {
      m_retry.log().debug("{}: mounted from {}{}", what, from, remembered ? " (where an earlier run saw it)" : "");
      remember(key, dst, dst_repo, blob);
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
  remember(key, dst, dst_repo, blob);
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
