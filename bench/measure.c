/* bench/measure.c - runs one command and writes what it cost: "wall_s user_s sys_s maxrss_kib".
 *
 *   measure OUT_FILE COMMAND [ARG...]
 *
 * The wall clock (CLOCK_MONOTONIC, ns) starts just before fork() and stops when wait4() returns,
 * so it holds the command's own exec, run and exit and nothing of the shell that started this
 * launcher. CPU and peak RSS come from wait4()'s rusage (µs, KiB). The launcher makes itself the
 * leader of a new process group first, so the command and anything it starts can be killed as a
 * whole (kill -TERM -- -PID). It stays in the caller's session: a new session would be a new
 * scheduler autogroup (sched_autogroup_enabled), and CFS would then share the CPU between the
 * command and the registries it talks to as between two users, which slowed the 0.15 s no-op by
 * ~6 ms and skopeo's by ~15 ms. Exit status: the command's (128 + signal when it was killed), 127
 * when it could not be started, 125 when this launcher failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double seconds(const struct timespec *t) { return (double)t->tv_sec + (double)t->tv_nsec / 1e9; }
static double tv_seconds(const struct timeval *t) { return (double)t->tv_sec + (double)t->tv_usec / 1e6; }

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: measure OUT_FILE COMMAND [ARG...]\n");
    return 125;
  }
  setpgid(0, 0); /* fails only for a session leader, which has its own group: killable all the same */
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "measure: fork: %s\n", strerror(errno));
    return 125;
  }
  if (pid == 0) {
    execvp(argv[2], argv + 2);
    fprintf(stderr, "measure: cannot run %s: %s\n", argv[2], strerror(errno));
    _exit(127);
  }
  int status = 0;
  struct rusage ru;
  while (wait4(pid, &status, 0, &ru) < 0)
    if (errno != EINTR) {
      fprintf(stderr, "measure: wait4: %s\n", strerror(errno));
      return 125;
    }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  FILE *out = fopen(argv[1], "w");
  if (!out) {
    fprintf(stderr, "measure: cannot write %s: %s\n", argv[1], strerror(errno));
    return 125;
  }
  fprintf(out, "%.6f %.6f %.6f %ld\n", seconds(&t1) - seconds(&t0), tv_seconds(&ru.ru_utime), tv_seconds(&ru.ru_stime),
          ru.ru_maxrss);
  if (fclose(out) != 0)
    return 125;
  if (WIFSIGNALED(status))
    return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}
