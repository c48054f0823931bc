#include "util/file.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

namespace util {

namespace {

/// ".<name>.<16 random letters>.tmp" beside the target: unpredictable, so nobody can plant it first.
std::string temporary_name(const std::string& path) {
  static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  unsigned char random[16];
  std::size_t got = 0;
  while (got < sizeof random) {
    ssize_t n = ::getrandom(random + got, sizeof random - got, 0);
    if (n > 0)
      got += static_cast<std::size_t>(n);
    else if (errno != EINTR)
      break;
  }
  if (got < sizeof random) { // no getrandom (a very old kernel): the C++ library's source
    std::random_device device;
    for (auto& b : random)
      b = static_cast<unsigned char>(device());
  }
  std::string suffix;
  for (unsigned char b : random)
    suffix += alphabet[b % (sizeof alphabet - 1)];
  // Appended piece by piece: `"." + std::string` trips GCC 12's -Wrestrict at -O3 (a false positive).
  std::string name = ".";
  name += std::filesystem::path(path).filename().string();
  name += '.';
  name += suffix;
  name += ".tmp";
  return (std::filesystem::path(directory_of(path)) / name).string();
}

int open_exclusive(const std::string& tmp) {
  int fd;
  do
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  while (fd < 0 && errno == EINTR);
  return fd;
}

int fsync_directory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return errno;
  int error = ::fsync(fd) == 0 || errno == EINVAL ? 0 : errno; // EINVAL: a filesystem without it
  ::close(fd);
  return error;
}

} // namespace

AtomicFile::AtomicFile(std::string path, mode_t mode) : m_path(std::move(path)) {
  std::error_code ec;
  if (std::filesystem::is_directory(m_path, ec)) {
    m_error = m_path + ": is a directory, not a file";
    return;
  }
  // A device, a FIFO or a socket is never replaced by a file (as root, `--report /dev/null` would
  // otherwise leave the machine without its /dev/null). A symbolic link is replaced, not followed.
  struct stat st {};
  if (::lstat(m_path.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
    m_error = m_path + ": not a regular file (a device, a FIFO or a socket): not replaced";
    return;
  }
  const std::string dir = directory_of(m_path);
  if (!std::filesystem::is_directory(dir, ec)) {
    m_error = m_path + ": cannot write: the directory " + dir + " does not exist";
    return;
  }
  for (int attempt = 0; attempt < 8 && m_fd < 0; ++attempt) {
    m_tmp = temporary_name(m_path);
    m_fd = open_exclusive(m_tmp);
    if (m_fd < 0 && errno != EEXIST)
      break;
  }
  if (m_fd < 0) {
    fail("cannot write", errno);
    m_tmp.clear();
    return;
  }
  // The mode before any byte: a password file is never readable by others, not even for a moment.
  if (::fchmod(m_fd, mode) != 0)
    fail("cannot set its mode", errno);
}

AtomicFile::~AtomicFile() {
  if (m_fd >= 0)
    ::close(m_fd);
  if (!m_tmp.empty())
    ::unlink(m_tmp.c_str());
}

bool AtomicFile::fail(const std::string& what, int error) {
  if (m_error.empty())
    m_error = m_path + ": " + what + ": " + std::strerror(error);
  return false;
}

bool AtomicFile::write(std::string_view bytes) {
  if (!ok() || m_fd < 0)
    return false;
  if (int error = write_all(m_fd, bytes))
    return fail("write failed", error);
  return true;
}

bool AtomicFile::commit(bool replace) {
  if (!ok() || m_fd < 0)
    return false;
  if (::fsync(m_fd) != 0)
    return fail("write failed (fsync)", errno);
  int fd = m_fd;
  m_fd = -1;
  if (::close(fd) != 0)
    return fail("write failed (close)", errno);
  if (!replace) {
    const bool linked = ::link(m_tmp.c_str(), m_path.c_str()) == 0;
    const int error = errno;
    ::unlink(m_tmp.c_str());
    m_tmp.clear();
    if (!linked) {
      m_exists = error == EEXIST;
      return fail("cannot create the file", error);
    }
  } else if (::rename(m_tmp.c_str(), m_path.c_str()) != 0) {
    return fail("cannot replace the file", errno);
  }
  m_tmp.clear();
  if (int error = fsync_directory(directory_of(m_path)))
    return fail("written, but its directory could not be synced", error);
  return true;
}

std::string directory_of(const std::string& path) {
  std::filesystem::path p(path);
  return p.has_parent_path() ? p.parent_path().string() : std::string(".");
}

int write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return n < 0 ? errno : EIO;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return 0;
}

std::string write_file_atomically(const std::string& path, std::string_view content, mode_t mode) {
  AtomicFile file(path, mode);
  if (file.write(content))
    file.commit();
  return file.error();
}

std::string unwritable(const std::string& path) {
  AtomicFile probe(path, 0600); // removed again when it goes out of scope
  return probe.error();
}

int open_regular_file(const std::string& path, std::string& why) {
  int fd;
  do
    fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    why = path + ": " + (errno == ELOOP ? std::string("a symbolic link, not a file") : std::strerror(errno));
    return -1;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    why = path + ": not a regular file";
    ::close(fd);
    return -1;
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

std::optional<std::string> read_regular_file(const std::string& path, std::size_t max, std::string& why) {
  int fd = open_regular_file(path, why);
  if (fd < 0)
    return std::nullopt;
  std::string out;
  char buffer[65536];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      why = path + ": " + std::strerror(errno);
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0)
      break;
    if (out.size() + static_cast<std::size_t>(n) > max) {
      why = path + ": larger than " + std::to_string(max) + " bytes";
      ::close(fd);
      return std::nullopt;
    }
    out.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

std::string make_directories_below(const std::string& root, const std::string& below) {
  std::filesystem::path at(root);
  for (const auto& part : std::filesystem::path(below)) {
    if (part.empty() || part == "." || part == "..")
      return root + ": refusing the directory \"" + below + "\"";
    at /= part;
    struct stat st {};
    if (::lstat(at.c_str(), &st) == 0) {
      if (S_ISLNK(st.st_mode))
        return at.string() + ": a symbolic link where a directory of ours belongs: not followed";
      if (!S_ISDIR(st.st_mode))
        return at.string() + ": not a directory";
      continue;
    }
    if (::mkdir(at.c_str(), 0755) != 0 && errno != EEXIST)
      return at.string() + ": cannot create the directory: " + std::strerror(errno);
    if (::lstat(at.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) // created meanwhile, as something else
      return at.string() + ": not a directory";
  }
  return {};
}

int make_private_directories(const std::string& dir) {
  std::vector<std::filesystem::path> missing;
  for (std::filesystem::path p = dir; !p.empty(); p = p.parent_path()) {
    std::error_code ec;
    if (std::filesystem::exists(p, ec))
      break;
    missing.push_back(p);
    if (p == p.parent_path())
      break;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it)
    if (::mkdir(it->c_str(), 0700) != 0 && errno != EEXIST)
      return errno;
  return 0;
}

int open_for_append(const std::string& path, mode_t mode) {
  int fd;
  do
    fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, mode);
  while (fd < 0 && errno == EINTR);
  return fd;
}

FileLock::FileLock(const std::string& path, std::chrono::milliseconds wait) {
  do
    m_fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  while (m_fd < 0 && errno == EINTR);
  if (m_fd < 0)
    return;
  const auto until = std::chrono::steady_clock::now() + wait;
  while (::flock(m_fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR)
      continue;
    if (errno != EWOULDBLOCK || std::chrono::steady_clock::now() >= until) {
      m_busy = errno == EWOULDBLOCK;
      ::close(m_fd);
      m_fd = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

FileLock::~FileLock() {
  if (m_fd >= 0)
    ::close(m_fd); // releases the lock
}

} // namespace util
