// Runs one command and reports its wall time, CPU time and peak RSS, for bench/run.py.
//
//   pgtls_bench_launch RESULT_FILE COMMAND [ARG...]
//   -> RESULT_FILE gets "wall_ns=W utime_us=U stime_us=S maxrss_kib=M status=X"; the exit
//      status mirrors the command's (128+N when killed by signal N).
//
// Why not measure from Python: a child forked (or vforked) by the Python runner starts
// with Python's resident set, and the kernel keeps that high-water mark in ru_maxrss across
// exec, so every reader would show at least the runner's ~20 MiB. Forking from this small
// process keeps that floor near 1 MiB, and the clock brackets only fork..wait4.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace {

long long NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

long long Micros(const timeval& tv) {
  return static_cast<long long>(tv.tv_sec) * 1000000LL + tv.tv_usec;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s RESULT_FILE COMMAND [ARG...]\n", argv[0]);
    return 2;
  }
  const char* result_path = argv[1];
  long long start = NowNs();
  pid_t pid = fork();
  if (pid < 0) {
    std::perror("fork");
    return 125;
  }
  if (pid == 0) {
    execvp(argv[2], argv + 2);
    std::fprintf(stderr, "%s: %s\n", argv[2], std::strerror(errno));
    _exit(127);
  }
  int status = 0;
  rusage ru{};
  while (wait4(pid, &status, 0, &ru) < 0) {
    if (errno != EINTR) {
      std::perror("wait4");
      return 125;
    }
  }
  long long wall = NowNs() - start;
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);

  FILE* out = std::fopen(result_path, "w");
  if (out == nullptr) {
    std::perror(result_path);
    return 125;
  }
  std::fprintf(out, "wall_ns=%lld utime_us=%lld stime_us=%lld maxrss_kib=%ld status=%d\n", wall,
               Micros(ru.ru_utime), Micros(ru.ru_stime), ru.ru_maxrss, code);
  std::fclose(out);
  return code;
}
