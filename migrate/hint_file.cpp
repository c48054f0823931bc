#include "migrate/hint_file.hpp"

#include "registry/digest.hpp"
#include "util/file.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <iterator>
#include <sstream>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

namespace migrate {

namespace {

namespace fs = std::filesystem;

long today() { return static_cast<long>(std::time(nullptr) / 86400); }

/// One field of a line: printable, no blanks, bounded.
bool plain_field(const std::string& s) {
  if (s.empty() || s.size() > 4096 || s[0] == '#')
    return false;
  return std::none_of(s.begin(), s.end(), [](unsigned char c) { return c <= ' ' || c == 0x7f; });
}

struct Line {
  std::string key, value, day;
};

/// The three blank-separated fields of "key value day"; nullopt for more or fewer.
std::optional<Line> split_line(const std::string& text) {
  std::istringstream fields(text);
  Line line;
  std::string rest;
  if (!(fields >> line.key >> line.value >> line.day) || (fields >> rest))
    return std::nullopt;
  return line;
}

constexpr std::string_view sha256 = "sha256:";
constexpr char packed_mark = '\1';
constexpr std::size_t packed_size = 1 + 32;                 // the mark and the digest's bytes
constexpr std::size_t spelled_size = sha256.size() + 64;    // "sha256:" and 64 hex digits

/// `text` with each "sha256:" + 64 lowercase hex digits as packed_mark and 32 bytes (checked
/// fields never hold a byte below '!', so the mark is never text, and packing is one to one).
std::string pack(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const auto bytes = text.substr(i, sha256.size()) == sha256 ? registry::sha256_bytes(text.substr(i, spelled_size))
                                                              : std::nullopt;
    if (!bytes) {
      out += text[i++];
      continue;
    }
    out += packed_mark;
    out.append(reinterpret_cast<const char*>(bytes->data()), bytes->size());
    i += spelled_size;
  }
  return out;
}

/// The text a packed string was made from, a character at a time (keys are sorted as text).
class Unpacker {
public:
  explicit Unpacker(std::string_view packed) : m_packed(packed) {}
  bool done() const { return m_i >= m_packed.size(); }
  char next() {
    if (m_packed[m_i] != packed_mark)
      return m_packed[m_i++];
    char c;
    if (m_sub < sha256.size()) {
      c = sha256[m_sub];
    } else {
      const std::size_t digit = m_sub - sha256.size();
      const auto byte = static_cast<unsigned char>(m_packed[m_i + 1 + digit / 2]);
      c = "0123456789abcdef"[digit % 2 ? byte & 15 : byte >> 4];
    }
    if (++m_sub == spelled_size) {
      m_sub = 0;
      m_i += packed_size;
    }
    return c;
  }

private:
  std::string_view m_packed;
  std::size_t m_i = 0;
  std::size_t m_sub = 0; // within a packed digest: the character of its spelling
};

std::string unpack(std::string_view packed) {
  std::string out;
  out.reserve(packed.size() + 64);
  for (Unpacker u(packed); !u.done();)
    out += u.next();
  return out;
}

/// Whether packed `a` comes before packed `b` as the texts they were made from.
bool text_before(std::string_view a, std::string_view b) {
  Unpacker x(a), y(b);
  while (!x.done() && !y.done()) {
    const auto c = static_cast<unsigned char>(x.next()), d = static_cast<unsigned char>(y.next());
    if (c != d)
      return c < d;
  }
  return x.done() && !y.done();
}

} // namespace

HintFile::HintFile(fs::path path, std::string header, Check check, std::size_t max_entries)
    : m_path(std::move(path)), m_header(std::move(header)), m_check(std::move(check)), m_max_entries(max_entries) {
  read([&](std::string key, std::string value, long day) { put(pack(key), pack(value), day, 0); });
}

bool HintFile::ByKey::operator()(const auto& a, const auto& b) const { return text_before(key(a), key(b)); }

HintFile::Entry* HintFile::locate(std::string_view packed_key) {
  const ByKey by_key{this};
  if (auto at = std::lower_bound(m_sorted.begin(), m_sorted.end(), packed_key, by_key);
      at != m_sorted.end() && !by_key(packed_key, *at))
    return &m_entries[*at];
  auto it = m_recent.find(packed_key);
  return it == m_recent.end() ? nullptr : &m_entries[*it];
}

void HintFile::merge_recent() {
  std::vector<std::uint32_t> merged;
  merged.reserve(m_sorted.size() + m_recent.size());
  std::merge(m_sorted.begin(), m_sorted.end(), m_recent.begin(), m_recent.end(), std::back_inserter(merged), ByKey{this});
  m_sorted.swap(merged);
  m_recent.clear();
}

std::optional<std::uint32_t> HintFile::append(std::string_view packed_key, std::string_view packed_value) {
  const std::size_t size = packed_key.size() + packed_value.size();
  if (m_blocks.empty() || m_block_used + size > block_size) {
    if (m_blocks.size() >= block_size || size > block_size)
      return std::nullopt;
    m_blocks.push_back(std::make_unique_for_overwrite<char[]>(block_size));
    m_block_used = 0;
  }
  const auto offset = static_cast<std::uint32_t>((m_blocks.size() - 1) << 16 | m_block_used);
  char* at = m_blocks.back().get() + m_block_used;
  std::copy(packed_key.begin(), packed_key.end(), at);
  std::copy(packed_value.begin(), packed_value.end(), at + packed_key.size());
  m_block_used += size;
  return offset;
}

void HintFile::compact() {
  // Every entry again, one after another in new blocks (gone ones too: the index compares their
  // keys); numbers and order do not change, only offsets.
  std::vector<std::unique_ptr<char[]>> old;
  old.swap(m_blocks);
  m_block_used = 0;
  m_garbage = 0;
  for (Entry& e : m_entries) {
    const char* text = old[e.offset >> 16].get() + (e.offset & 0xffff);
    e.offset = append({text, e.key_size}, {text + e.key_size, e.value_size}).value(); // fits: it did before
  }
}

HintFile::Entry* HintFile::put(std::string_view packed_key, std::string_view packed_value, long day,
                               std::uint8_t flags) {
  Entry* e = locate(packed_key);
  if (e && packed_value.size() <= e->value_size) {
    // A value no longer than the one it replaces is written over it (a blob's repository changes
    // with every repository that gets it: one entry, not a copy per repository).
    m_garbage += e->value_size - packed_value.size();
    std::copy(packed_value.begin(), packed_value.end(), text_of(*e) + e->key_size);
    e->value_size = static_cast<std::uint16_t>(packed_value.size());
  } else {
    if (!e && m_entries.size() >= UINT32_MAX / 2)
      return nullptr;
    if (e)
      m_garbage += e->key_size + e->value_size; // left behind: reclaimed by compact()
    const auto offset = append(packed_key, packed_value); // at most 2 x 4096 bytes (plain_field)
    if (!offset)
      return nullptr; // beyond what one run keeps (4 GiB): a hint not kept
    const bool fresh = !e;
    if (fresh) {
      m_entries.push_back({});
      e = &m_entries.back();
    }
    e->offset = *offset;
    e->key_size = static_cast<std::uint16_t>(packed_key.size());
    e->value_size = static_cast<std::uint16_t>(packed_value.size());
    if (fresh) {
      m_recent.insert(static_cast<std::uint32_t>(m_entries.size() - 1));
      if (m_recent.size() >= std::max<std::size_t>(1024, m_sorted.size() / 8))
        merge_recent();
    }
    if (m_garbage > std::max<std::size_t>(block_size, m_blocks.size() * block_size / 2))
      compact();
  }
  e->day = static_cast<std::int32_t>(day);
  e->flags = flags;
  return e;
}

bool HintFile::usable(const std::string& key, const std::string& value) const {
  return plain_field(key) && plain_field(value) && (!m_check || m_check(key, value));
}

std::string HintFile::foreign(const fs::path& path, const std::string& header) {
  std::string why;
  int fd = util::open_regular_file(path.string(), why);
  if (fd < 0)
    return ""; // missing, or not a regular file: the write says why, if it comes to one
  char head[4096];
  ssize_t n;
  do
    n = ::read(fd, head, sizeof head);
  while (n < 0 && errno == EINTR);
  ::close(fd);
  if (n <= 0)
    return "";
  std::string_view text(head, static_cast<std::size_t>(n));
  const std::string first(text.substr(0, text.find('\n')));
  // Ours: the header, or (a file cut before it, an older version) a line of "key value day".
  constexpr std::string_view ours = "# image-migrator ";
  // Bytes no text file has (a NUL): a damaged cache, replaced; text that is not ours (a JSON or
  // YAML file named by mistake) is refused.
  auto entry = split_line(first);
  const bool entry_line =
      entry && std::all_of(entry->day.begin(), entry->day.end(), [](unsigned char c) { return std::isdigit(c); });
  // The kind a header names: "# image-migrator tag digests" of "# image-migrator tag digests v2: ...".
  auto kind = [](std::string_view line) {
    line = line.substr(0, line.find(':'));
    auto v = line.rfind(" v");
    return v == std::string_view::npos ? line : line.substr(0, v);
  };
  if (first.starts_with(ours) && !header.empty() && kind(first) != kind(header))
    return path.string() + ": " + std::string(kind(first).substr(2)) + " cache, not a " +
           std::string(kind(header).substr(ours.size())) + " one: not overwritten";
  if (first.starts_with(ours) || entry_line || text.find('\0') != std::string_view::npos)
    return "";
  return path.string() + ": not a cache file of image-migrator (its first line is not \"" + std::string(ours) +
         "...\"): not overwritten";
}

void HintFile::read(const std::function<void(std::string key, std::string value, long day)>& each) const {
  // A regular file only (not a FIFO, a device or a symlink), of a bounded size: anything else is
  // an empty memory, never a hang or a gigabyte read. Read in chunks, a line at a time: the file
  // is never held whole (a catalogue's worth of entries).
  std::string why;
  int fd = util::open_regular_file(m_path.string(), why);
  if (fd < 0)
    return;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || static_cast<std::size_t>(st.st_size) > max_bytes()) {
    ::close(fd);
    return;
  }
  constexpr std::size_t longest = 3 * 4096 + 64; // three fields of at most 4096 bytes
  const std::size_t max_lines = 2 * m_max_entries + 16;
  std::size_t lines = 0, total = 0;
  std::string line;
  bool skipping = false; // inside a line too long to be an entry
  auto take = [&](const std::string& text) {
    if (text.empty() || text[0] == '#')
      return;
    auto entry = split_line(text);
    if (!entry)
      return;
    char* end = nullptr;
    errno = 0;
    long d = std::strtol(entry->day.c_str(), &end, 10);
    if (!usable(entry->key, entry->value) || errno || *end || d < 0 || d > INT32_MAX)
      return;
    each(std::move(entry->key), std::move(entry->value), d);
  };
  char buffer[65536];
  while (lines <= max_lines && total <= max_bytes()) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    total += static_cast<std::size_t>(n);
    for (std::string_view rest(buffer, static_cast<std::size_t>(n)); !rest.empty();) {
      const auto nl = rest.find('\n');
      const auto piece = rest.substr(0, nl);
      if (!skipping) {
        line.append(piece);
        if (line.size() > longest) {
          skipping = true;
          line.clear();
        }
      }
      if (nl == std::string_view::npos)
        break;
      rest.remove_prefix(nl + 1);
      if (!skipping && ++lines <= max_lines)
        take(line);
      skipping = false;
      line.clear();
    }
  }
  if (!skipping && !line.empty() && lines < max_lines)
    take(line); // a last line without its newline
  ::close(fd);
}

std::optional<std::string> HintFile::find(const std::string& key) {
  if (!plain_field(key))
    return std::nullopt; // never stored (and a byte below '!' would read as a packed digest's mark)
  std::lock_guard lock(m_mutex);
  Entry* e = locate(pack(key));
  if (!e || (e->flags & (forgotten | gone)))
    return std::nullopt;
  e->flags |= seen;
  return unpack(value_of(*e));
}

void HintFile::forget(const std::string& key) {
  if (!plain_field(key))
    return;
  std::lock_guard lock(m_mutex);
  if (Entry* e = locate(pack(key)); e && !(e->flags & gone))
    e->flags = forgotten;
}

void HintFile::remember(const std::string& key, const std::string& value) {
  if (!usable(key, value))
    return;
  std::lock_guard lock(m_mutex);
  put(pack(key), pack(value), today(), seen);
}

std::optional<std::string> HintFile::save() {
  auto fail = [&](const std::string& what, int error) {
    return m_path.string() + ": " + what + ": " + std::strerror(error);
  };
  std::lock_guard lock(m_mutex);
  if (std::none_of(m_entries.begin(), m_entries.end(), [](const Entry& e) { return e.flags & (seen | forgotten); }))
    return std::nullopt; // this run used nothing: the file stays as it is
  const fs::path dir = m_path.has_parent_path() ? m_path.parent_path() : fs::path(".");
  if (int error = util::make_private_directories(dir.string()))
    return fail("cannot create its directory", error);
  // Runs that save at the same time take turns (flock on "<file>.lock"), so that each merges what
  // the other saved. Without a lock to be had (a read-only directory), the write below says why.
  util::FileLock turn(m_path.string() + ".lock");
  if (auto why = foreign(m_path, m_header); !why.empty())
    return why;
  if (turn.busy())
    return m_path.string() + ": another run has held " + m_path.filename().string() +
           ".lock for 10 seconds: not saved this time";
  const long now = today();
  // Merged in place: what this run used or proved wrong, and the file as another run may have
  // saved it since this one read it (the entries this run only read come again from there; a key
  // twice in the file: the later line).
  for (Entry& e : m_entries)
    if (!(e.flags & (seen | forgotten)))
      e.flags = gone;
  read([&](std::string key, std::string value, long day) {
    const std::string packed_key = pack(key);
    if (Entry* e = locate(packed_key); !e || !(e->flags & (seen | forgotten)))
      put(packed_key, pack(value), day, 0);
  });
  // Proved wrong, unused for too long, or dated after today (a clock set back): forgotten. What this
  // run used is dated today.
  std::vector<std::uint32_t> kept; // entry numbers, in key order
  merge_recent();
  for (std::uint32_t n : m_sorted) {
    Entry& e = m_entries[n];
    if (e.flags & seen)
      e.day = static_cast<std::int32_t>(now);
    if (!(e.flags & gone) && ((e.flags & forgotten) || now - e.day > keep_days || e.day > now))
      e.flags = gone;
    if (!(e.flags & gone))
      kept.push_back(n);
  }
  if (kept.size() > m_max_entries) {
    // The least recently used go first: the day of the entry at the cut, and as many of that day
    // as still fit (in key order).
    std::vector<std::int32_t> days;
    days.reserve(kept.size());
    for (auto n : kept)
      days.push_back(m_entries[n].day);
    auto cut = days.begin() + static_cast<std::ptrdiff_t>(days.size() - m_max_entries);
    std::nth_element(days.begin(), cut, days.end());
    const std::int32_t oldest_kept = *cut;
    std::size_t of_that_day = static_cast<std::size_t>(std::count(cut, days.end(), oldest_kept));
    std::erase_if(kept, [&](std::uint32_t n) {
      Entry& e = m_entries[n];
      if (e.day < oldest_kept || (e.day == oldest_kept && of_that_day == 0)) {
        e.flags = gone;
        return true;
      }
      if (e.day == oldest_kept)
        --of_that_day;
      return false;
    });
  }
  // Written in chunks: never the whole file in memory at once.
  util::AtomicFile file(m_path.string(), 0600);
  if (!file.ok())
    return file.error();
  std::string chunk = m_header + '\n';
  for (auto n : kept) {
    const Entry& e = m_entries[n];
    chunk += unpack(key_of(e)) + ' ' + unpack(value_of(e)) + ' ' + std::to_string(e.day) + '\n';
    if (chunk.size() >= 65536 && file.ok()) {
      file.write(chunk);
      chunk.clear();
    }
  }
  if (file.ok())
    file.write(chunk);
  if (!file.ok() || !file.commit())
    return file.error();
  for (Entry& e : m_entries)
    e.flags &= static_cast<std::uint8_t>(~seen); // saved: a later save() starts from the file again
  return std::nullopt;
}

} // namespace migrate
