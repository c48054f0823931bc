#include "http/process.hpp"

#include "util/process.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <thread>
#include <utility>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace http {

namespace {

/// Owns a file descriptor.
class Fd {
public:
  Fd() = default;
  explicit Fd(int fd) : m_fd(fd) {}
  Fd(Fd&& o) noexcept : m_fd(std::exchange(o.m_fd, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      m_fd = std::exchange(o.m_fd, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return m_fd; }
  void reset() {
    if (m_fd >= 0)
      ::close(m_fd);
    m_fd = -1;
  }

private:
  int m_fd = -1;
};

} // namespace

Result<ProcessOutput> run_process(const std::string& program, const std::string& name,
                                  const std::vector<std::string>& args, const std::vector<std::string>& env,
                                  const std::string& input, std::chrono::milliseconds limit, std::size_t max_output) {
  auto fail = [&](const std::string& what) { return make_error(ErrorKind::invalid, what); };
  // stdin is a socket so that writing to a helper that exits early is EPIPE, not SIGPIPE.
  int in[2], out[2], err[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0)
    return fail(std::string("cannot create a socket: ") + std::strerror(errno));
  Fd in_parent(in[0]), in_child(in[1]);
  if (::pipe2(out, O_CLOEXEC) != 0)
    return fail(std::string("cannot create a pipe: ") + std::strerror(errno));
  Fd out_parent(out[0]), out_child(out[1]);
  if (::pipe2(err, O_CLOEXEC) != 0)
    return fail(std::string("cannot create a pipe: ") + std::strerror(errno));
  Fd err_parent(err[0]), err_child(err[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_child.get(), 0);
  posix_spawn_file_actions_adddup2(&actions, out_child.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, err_child.get(), 2);
  // Our threads may block signals (the CLI's signal handling): the helper starts with none blocked.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT})
    sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> argv{const_cast<char*>(name.c_str())};
  for (const auto& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : env)
    if (!util::withheld_from_children(e)) // the key of auth.json's ciphertext, passwords auth.json reads
      envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = -1;
  // A bare name is looked up in PATH (posix_spawnp), a path is used as it is.
  int rc = program.find('/') == std::string::npos
               ? ::posix_spawnp(&pid, program.c_str(), &actions, &attr, argv.data(), envp.data())
               : ::posix_spawn(&pid, program.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0)
    return fail("cannot run " + program + ": " + std::strerror(rc));
  in_child.reset();
  out_child.reset();
  err_child.reset();
  for (const Fd* fd : {&in_parent, &out_parent, &err_parent})
    ::fcntl(fd->get(), F_SETFL, ::fcntl(fd->get(), F_GETFL) | O_NONBLOCK);

  ProcessOutput result;
  auto deadline = std::chrono::steady_clock::now() + limit;
  auto ms_left = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
  };
  std::size_t written = 0;
  std::string problem;
  while (out_parent.get() >= 0 || err_parent.get() >= 0) {
    auto left = ms_left();
    if (left <= 0) {
      problem = "did not answer within " + std::to_string(limit.count()) + " ms";
      break;
    }
    pollfd fds[3] = {{in_parent.get(), POLLOUT, 0}, {out_parent.get(), POLLIN, 0}, {err_parent.get(), POLLIN, 0}};
    if (::poll(fds, 3, static_cast<int>(left)) < 0) {
      if (errno == EINTR)
        continue;
      problem = std::string("poll failed: ") + std::strerror(errno);
      break;
    }
    if (fds[0].revents != 0) {
      ssize_t n = ::send(in_parent.get(), input.data() + written, input.size() - written, MSG_NOSIGNAL);
      if (n > 0)
        written += static_cast<std::size_t>(n);
      if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == input.size())
        in_parent.reset(); // all written (the helper sees EOF), or the helper closed its stdin
    }
    for (int i = 1; i < 3; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0)
        continue;
      Fd& fd = i == 1 ? out_parent : err_parent;
      std::string& sink = i == 1 ? result.out : result.err;
      char buf[16384];
      ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n > 0)
        sink.append(buf, static_cast<std::size_t>(n));
      else if (n == 0 || (errno != EAGAIN && errno != EINTR))
        fd.reset();
    }
    if (result.out.size() + result.err.size() > max_output) {
      problem = max_output % (1u << 20) == 0 ? "wrote more than " + std::to_string(max_output >> 20) + " MiB"
                                             : "wrote more than " + std::to_string(max_output) + " bytes";
      break;
    }
  }
  in_parent.reset();
  out_parent.reset();
  err_parent.reset();
  // Both pipes are closed: wait for the exit, still within the time limit.
  int status = 0;
  for (;;) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid)
      break;
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0) {
      if (problem.empty())
        problem = std::string("cannot wait for it: ") + std::strerror(errno);
      break;
    }
    if (problem.empty() && ms_left() <= 0)
      problem = "did not exit within " + std::to_string(limit.count()) + " ms";
    if (!problem.empty()) {
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!problem.empty())
    return fail(problem);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  return result;
}

} // namespace http
