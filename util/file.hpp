#pragma once
// Files the tool writes (auth.json rewrites, images.json, reports, the failed list, pull-secret
// credentials, layout files, digest caches) all go through here, so that a shared directory cannot
// be used against them: the temporary file has an unpredictable name and is created exclusively
// (O_EXCL | O_NOFOLLOW: never a file or symlink someone planted), its mode is set before the first
// byte, it is fsynced, renamed over the target, and the directory is fsynced after the rename, so a
// power loss leaves the old file or the new one, never an empty one.

#include <cstddef>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>

namespace util {

/// A file being written beside `path`, which replaces `path` on commit(); removed if never committed.
class AtomicFile {
public:
  /// Creates the temporary file in the target's directory. Check ok() / error().
  AtomicFile(std::string path, mode_t mode);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  bool ok() const { return m_error.empty(); }
  /// Why the file could not be written: "<path>: <what>: <reason>"; "" when all went well.
  const std::string& error() const { return m_error; }
  /// Appends bytes; false (and error()) when the write failed.
  bool write(std::string_view bytes);
  /// The descriptor, for callers that stream (hashing downloads); -1 when not open.
  int fd() const { return m_fd; }
  /// fsync, rename over the target, fsync the directory; false (and error()) when any step failed.
  /// With `replace` false the file is only linked into place when nothing is there yet (another
  /// process's file wins: error() then ends in strerror(EEXIST) and exists() is true).
  bool commit(bool replace = true);
  /// After a commit(false) that failed: whether it failed because the target exists.
  bool exists() const { return m_exists; }

private:
  bool fail(const std::string& what, int error);
  std::string m_path;
  std::string m_tmp;
  std::string m_error;
  int m_fd = -1;
  bool m_exists = false;
};

/// Writes `content` to `path` through an AtomicFile; "" or why not ("<path>: ...").
[[nodiscard]] std::string write_file_atomically(const std::string& path, std::string_view content, mode_t mode = 0644);

/// Why `path` could not be written as a file right now ("" when it can): a directory, a missing or
/// unwritable parent directory. Creates and removes a temporary file the way AtomicFile does.
[[nodiscard]] std::string unwritable(const std::string& path);

/// The directory a file path is in ("." for a bare name).
std::string directory_of(const std::string& path);

/// Writes all of `bytes` to `fd` (again after EINTR and short writes): 0, or the errno (EIO for a
/// write that wrote nothing).
[[nodiscard]] int write_all(int fd, std::string_view bytes);

/// Opens an existing regular file for reading without following a symlink at its last component and
/// without blocking on a FIFO or a device (a tampered OCI layout may hold any of them): the
/// descriptor, or -1 and `why`.
int open_regular_file(const std::string& path, std::string& why);

/// The content of a regular file (open_regular_file) of at most `max` bytes; nullopt and `why`
/// otherwise (a larger file is not read to its end).
std::optional<std::string> read_regular_file(const std::string& path, std::size_t max, std::string& why);

/// Creates the directories of the relative path `below` under `root` (mode 0755), refusing any
/// existing component that is a symlink or not a directory (someone else's directory planted in a
/// shared destination): "" or why not.
std::string make_directories_below(const std::string& root, const std::string& below);

/// Creates what is missing of `dir`, each new directory mode 0700 (one that exists keeps its mode);
/// 0 or the errno.
int make_private_directories(const std::string& dir);

/// Opens `path` for appending (created with `mode` when absent) without following a symlink at its
/// last component; returns the descriptor, or -1 with errno set.
int open_for_append(const std::string& path, mode_t mode = 0644);

/// An exclusive flock(2) on a file of its own ("<something>.lock"), held while the object lives;
/// holds nothing when the lock file cannot be opened (a read-only directory), or when another
/// process held it for all of `wait` (then busy() is true): a lock never hangs its taker.
class FileLock {
public:
  explicit FileLock(const std::string& path, std::chrono::milliseconds wait = std::chrono::seconds(10));
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  bool held() const { return m_fd >= 0; }
  bool busy() const { return m_busy; }

private:
  int m_fd = -1;
  bool m_busy = false;
};

} // namespace util
