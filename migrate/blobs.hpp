#pragma once
// Blobs made present at a destination, once each: HEAD in the target repository first (check(), on
// the lane of short requests, so that it holds no transfer's place); known in
// another repository of that registry (this run, else an earlier one: BlobLocations): a
// cross-repository mount; otherwise, or when the mount is refused, the bytes are copied, streamed
// and verified (ImageStore::copy_blob_from). Single-flight per destination
// repository + digest (concurrent mounts of one blob into one repository race inside
// docker-registry) and per destination registry + digest (the bytes travel once; the others mount).

#include "migrate/blob_locations.hpp"
#include "migrate/results.hpp"
#include "migrate/retry.hpp"
#include "registry/store.hpp"

#include <array>
#include <compare>
#include <cstdint>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace migrate {

struct BlobStat {
  registry::BlobOutcome outcome = registry::BlobOutcome::copied;
  std::uint64_t bytes = 0;
};

class BlobCopier {
public:
  /// `memory`: where earlier runs saw blobs at destinations, and where this run records them (null: none).
  BlobCopier(const Retrier& retry, Progress& progress, BlobLocations* memory = nullptr)
      : m_retry(retry), m_progress(progress), m_memory(memory) {}

  /// Makes `blob` present in dst_repo of `dst` (whose store key is `dst_key`), from src_repo of `src`.
  /// `checked`: check() found it absent there, so it is not asked again.
  http::Result<BlobStat> ensure(registry::ImageStore& src, const std::string& src_repo, registry::ImageStore& dst,
                                const std::string& dst_key, const std::string& dst_repo, const registry::Descriptor& blob,
                                bool checked = false);

  /// The short first step of ensure(), kept apart so that it need not hold a transfer's place: a
  /// blob this run knows present in dst_repo, or that a HEAD there finds (existed), or a foreign
  /// layer (skipped_foreign); nullopt when it must be mounted or copied (ensure(..., true)).
  http::Result<std::optional<BlobStat>> check(registry::ImageStore& dst, const std::string& dst_key,
                                              const std::string& dst_repo, const registry::Descriptor& blob);

  /// Dry run: what ensure() would do (HEAD only). A blob another image of this run already brings
  /// counts as a mount.
  http::Result<BlobStat> plan(registry::ImageStore& dst, const std::string& dst_key, const std::string& dst_repo,
                              const registry::Descriptor& blob);

private:
  /// One in-flight operation per key: the first caller owns it, later ones wait for it to end.
  class Flight {
  public:
    Flight(BlobCopier& owner, std::string key);
    ~Flight();
    /// Waits for the owner, if someone else owns it; true when it did wait.
    bool wait_for_owner();

  private:
    BlobCopier& m_owner;
    std::string m_key;
    std::promise<void> m_mine;
    std::shared_future<void> m_other;
  };

  http::Result<BlobStat> ensure_once(registry::ImageStore& src, const std::string& src_repo, registry::ImageStore& dst,
                                     const std::string& dst_key, const std::string& dst_repo,
                                     const registry::Descriptor& blob, bool checked);
  /// A blob at a destination registry, small (a run may see a catalogue's worth): the registry's
  /// number (m_names) and a sha256 digest's 32 bytes; another algorithm's digest by its number
  /// among the names instead (`other`).
  struct BlobKey {
    std::uint32_t registry = 0;
    std::uint32_t other = 0; ///< 1 + the digest's name number when it is not sha256
    std::array<unsigned char, 32> sha256{};
    auto operator<=>(const BlobKey&) const = default;
  };
  /// Where this run saw a blob present: the repository it saw last, and any others (rare).
  struct Where {
    std::uint32_t latest = 0; ///< a repository's name number
    std::uint32_t more = 0;   ///< 1 + its list in m_more, 0 while none
  };
  std::uint32_t name_number(const std::string& name); // callers hold m_mutex
  BlobKey blob_key(const std::string& dst_key, const std::string& digest); // callers hold m_mutex
  bool known_present(const std::string& dst_key, const std::string& repo, const std::string& digest);
  void remember(const std::string& dst_key, registry::ImageStore& dst, const std::string& repo,
                const registry::Descriptor& blob);
  /// Where an earlier run saw `blob` in `dst`, when that is another repository than `dst_repo`.
  std::optional<std::string> remembered(registry::ImageStore& dst, const std::string& dst_repo,
                                        const registry::Descriptor& blob);
  /// A repository of `dst` to mount `blob` from instead of copying it ("" when none), and whether
  /// only an earlier run's memory says so.
  std::pair<std::string, bool> mount_source(const std::string& dst_key, registry::ImageStore& dst, const std::string& dst_repo,
                                            registry::ImageStore& src, const std::string& src_repo,
                                            const registry::Descriptor& blob);

  const Retrier& m_retry;
  Progress& m_progress;
  BlobLocations* m_memory;
  std::mutex m_mutex;
  std::map<std::string, std::shared_future<void>> m_in_flight; ///< dst registry + digest, or + repository
  std::map<std::string, std::uint32_t> m_numbers;              ///< registries, repositories, odd digests -> number
  std::vector<const std::string*> m_names;                     ///< number -> name (keys of m_numbers)
  std::map<BlobKey, Where> m_where;                            ///< blobs seen present at destinations
  std::vector<std::vector<std::uint32_t>> m_more;              ///< further repositories holding a blob (sorted)
  std::set<std::string> m_planned;                             ///< dry run: dst registry + digest already counted
};

} // namespace migrate
