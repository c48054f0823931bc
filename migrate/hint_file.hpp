#pragma once
// A small "key value day" file kept between runs under the user's cache directory: the tag digests
// (tag_digests.hpp) and the blob locations (blob_locations.hpp). Only hints: whatever it says is
// checked by a registry before anything rests on it, so a stale, foreign or damaged file costs a
// round trip, never a wrong result. Lines that do not pass the owner's check are dropped on reading.
// Thread-safe.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace migrate {

class HintFile {
public:
  /// Whether a key and its value may be kept (and later used in requests).
  using Check = std::function<bool(const std::string& key, const std::string& value)>;

  /// Reads `path` (a missing or unreadable file, or anything but a regular file of at most
  /// max_bytes(), is an empty one; lines beyond twice max_entries are not read). `header` is the
  /// file's first line; at most `max_entries` are saved, the most recently used first.
  HintFile(std::filesystem::path path, std::string header, Check check, std::size_t max_entries);

  const std::filesystem::path& path() const { return m_path; }

  /// Why `path` must not be written as a hint file: it exists, is text, and its first line is
  /// neither one of image-migrator's ("# image-migrator ...") nor an entry: another file given by
  /// mistake. "" when it may be (missing, empty, a cache of ours, or binary junk: a damaged cache;
  /// what is not a regular file AtomicFile refuses). With `header`: also image-migrator's other
  /// cache (its first line names another kind than `header` does: tag digests, blob locations).
  static std::string foreign(const std::filesystem::path& path, const std::string& header = {});

  /// The value of `key`; a found key is kept (and dated today) on save.
  std::optional<std::string> find(const std::string& key);
  /// `key` has `value` now (ignored unless it passes the check).
  void remember(const std::string& key, const std::string& value);
  /// `key`'s value proved wrong: not found again, and dropped from the file on save.
  void forget(const std::string& key);

  /// Writes the file through a new temporary file (mode 0600) renamed over it; a directory it has
  /// to create is 0700. What other runs saved is kept, except for the keys this run used (runs that
  /// save at once take turns: flock on "<file>.lock"); entries no run has used for more than
  /// keep_days are dropped, and the oldest beyond max_entries. A run that used nothing writes
  /// nothing; another run that holds the lock for 10 s makes this one give up. The reason when it
  /// cannot be written.
  std::optional<std::string> save();

  /// Bytes of the blocks that hold the entries' text (what the entries cost beyond ~20 bytes each).
  std::size_t text_bytes() {
    std::lock_guard lock(m_mutex);
    return m_blocks.size() * block_size;
  }

  static constexpr long keep_days = 30;
  /// The largest file read: 200 bytes a line, twice max_entries lines.
  std::size_t max_bytes() const { return 400 * m_max_entries + 4096; }

private:
  /// One entry. Its key and value are in m_blocks, packed: each "sha256:<64 hex>" there is a byte 1
  /// and the 32 bytes it spells (no field holds a byte below '!', so the mark is never text), so
  /// that a catalogue's entries cost about 100 bytes each, not a map node and two strings.
  struct Entry {
    std::uint32_t offset = 0;         ///< of the key in m_blocks (block << 16 | within); the value follows it
    std::uint16_t key_size = 0, value_size = 0;
    std::int32_t day = 0;             ///< days since the epoch it was last used
    std::uint8_t flags = 0;
  };
  static constexpr std::uint8_t seen = 1;      ///< found or remembered by this run
  static constexpr std::uint8_t forgotten = 2; ///< proved wrong by this run
  static constexpr std::uint8_t gone = 4;      ///< not an entry (dropped by a save): found by nothing

  /// Each checked entry of the file, in file order (a later line of a key wins for whoever keeps the last).
  void read(const std::function<void(std::string key, std::string value, long day)>& each) const;
  bool usable(const std::string& key, const std::string& value) const;

  char* text_of(const Entry& e) const { return m_blocks[e.offset >> 16].get() + (e.offset & 0xffff); }
  std::string_view key_of(const Entry& e) const { return {text_of(e), e.key_size}; }
  std::string_view value_of(const Entry& e) const { return {text_of(e) + e.key_size, e.value_size}; }
  /// The entry of a packed key, or null (gone ones included: the caller decides).
  Entry* locate(std::string_view packed_key);
  static constexpr std::size_t block_size = 1 << 16;
  /// Copies a key and its value into the blocks: their offset (nullopt beyond 4 GiB).
  std::optional<std::uint32_t> append(std::string_view packed_key, std::string_view packed_value);
  /// Copies every entry into new blocks, leaving behind what replaced values left.
  void compact();
  /// Sets `packed_key` to `packed_value` (a new entry, or the old one's value replaced).
  Entry* put(std::string_view packed_key, std::string_view packed_value, long day, std::uint8_t flags);

  /// Orders entry numbers (and packed keys) by their keys as text: the file's order.
  struct ByKey {
    using is_transparent = void;
    const HintFile* file;
    std::string_view key(std::uint32_t n) const { return file->key_of(file->m_entries[n]); }
    std::string_view key(std::string_view packed) const { return packed; }
    bool operator()(const auto& a, const auto& b) const;
  };

  std::filesystem::path m_path;
  std::string m_header;
  Check m_check;
  std::size_t m_max_entries;
  std::mutex m_mutex;
  /// Every entry's packed key and value, one after another, in blocks of 64 KiB (an entry is at
  /// most 8 KiB and never crosses a block): they grow without a copy of all that came before.
  std::vector<std::unique_ptr<char[]>> m_blocks;
  std::size_t m_block_used = 0; ///< bytes used in the last block
  std::size_t m_garbage = 0;    ///< bytes in the blocks no entry uses (replaced values)
  std::deque<Entry> m_entries;  ///< a deque: no copy of all entries as it grows
  // The index, entry numbers in key order (searched, never hashed: no hash a registry's names could
  // make collide): a sorted array, 4 bytes an entry, and a tree of the entries added since it was
  // last merged into it (merged when the tree holds an eighth of the array or 1,024).
  std::vector<std::uint32_t> m_sorted;
  std::set<std::uint32_t, ByKey> m_recent{ByKey{this}};
  void merge_recent();
};

} // namespace migrate
