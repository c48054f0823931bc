#include "migrate/hint_file.hpp"

#include "util/file.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
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

} // namespace

HintFile::HintFile(fs::path path, std::string header, Check check, std::size_t max_entries)
    : m_path(std::move(path)), m_header(std::move(header)), m_check(std::move(check)), m_max_entries(max_entries) {
  read([&](std::string key, std::string value, long day) {
    m_entries.insert_or_assign(std::move(key), Stored{std::move(value), day, false, false});
  });
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
    if (!usable(entry->key, entry->value) || errno || *end || d < 0)
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
  std::lock_guard lock(m_mutex);
  auto it = m_entries.find(key);
  if (it == m_entries.end())
    return std::nullopt;
  if (it->second.forgotten)
    return std::nullopt;
  it->second.seen = true;
  return it->second.value;
}

void HintFile::forget(const std::string& key) {
  std::lock_guard lock(m_mutex);
  auto it = m_entries.find(key);
  if (it != m_entries.end()) {
    it->second.forgotten = true;
    it->second.seen = false;
  }
}

void HintFile::remember(const std::string& key, const std::string& value) {
  if (!usable(key, value))
    return;
  std::lock_guard lock(m_mutex);
  Stored& s = m_entries[key];
  s.value = value;
  s.seen = true;
  s.forgotten = false;
}

std::optional<std::string> HintFile::save() {
  auto fail = [&](const std::string& what, int error) {
    return m_path.string() + ": " + what + ": " + std::strerror(error);
  };
  std::lock_guard lock(m_mutex);
  if (std::none_of(m_entries.begin(), m_entries.end(), [](const auto& kv) { return kv.second.seen || kv.second.forgotten; }))
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
  // saved it since this one read it (the entries this run only read come again from there).
  std::erase_if(m_entries, [](const auto& kv) { return !kv.second.seen && !kv.second.forgotten; });
  read([&](std::string key, std::string value, long day) {
    auto it = m_entries.find(key);
    if (it == m_entries.end())
      m_entries.emplace(std::move(key), Stored{std::move(value), day, false, false});
    else if (!it->second.seen && !it->second.forgotten) // a key twice in the file: the later line
      it->second = Stored{std::move(value), day, false, false};
  });
  // Proved wrong, unused for too long, or dated after today (a clock set back): forgotten. What this
  // run used is dated today.
  for (auto& [key, stored] : m_entries)
    if (stored.seen)
      stored.day = now;
  std::erase_if(m_entries, [&](const auto& kv) {
    const Stored& s = kv.second;
    return s.forgotten || now - s.day > keep_days || s.day > now;
  });
  if (m_entries.size() > m_max_entries) {
    // The least recently used go first: the day of the entry at the cut, and as many of that day
    // as still fit (in key order).
    std::vector<long> days;
    days.reserve(m_entries.size());
    for (const auto& [key, stored] : m_entries)
      days.push_back(stored.day);
    auto cut = days.begin() + static_cast<std::ptrdiff_t>(days.size() - m_max_entries);
    std::nth_element(days.begin(), cut, days.end());
    const long oldest_kept = *cut;
    std::size_t of_that_day = static_cast<std::size_t>(std::count(cut, days.end(), oldest_kept));
    for (auto it = m_entries.begin(); it != m_entries.end();) {
      if (it->second.day < oldest_kept || (it->second.day == oldest_kept && of_that_day == 0)) {
        it = m_entries.erase(it);
        continue;
      }
      if (it->second.day == oldest_kept)
        --of_that_day;
      ++it;
    }
  }
  // Written in chunks: never the whole file in memory at once.
  util::AtomicFile file(m_path.string(), 0600);
  if (!file.ok())
    return file.error();
  std::string chunk = m_header + '\n';
  for (const auto& [key, stored] : m_entries) {
    chunk += key + ' ' + stored.value + ' ' + std::to_string(stored.day) + '\n';
    if (chunk.size() >= 65536 && file.ok()) {
      file.write(chunk);
      chunk.clear();
    }
  }
  if (file.ok())
    file.write(chunk);
  if (!file.ok() || !file.commit())
    return file.error();
  for (auto& [key, stored] : m_entries)
    stored.seen = false; // saved: a later save() starts from the file again
  return std::nullopt;
}

} // namespace migrate
