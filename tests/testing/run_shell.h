// tests/testing/run_shell.h: runs a shell command from a test and collects what it printed.
// popen, not std::system: std::system is not thread-safe (clang-tidy concurrency-mt-unsafe) and
// gives no output to show when an assertion fails.
#pragma once

#include <array>
#include <cstdio>
#include <string>

namespace pgtlsmon::testing {

struct ShellResult {
  int status = -1;     // as pclose returns it: 0 when the command exited 0
  std::string output;  // its stdout and stderr
};

inline ShellResult RunShell(const std::string& cmd) {
  ShellResult r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  r.status = pclose(p);
  return r;
}

}  // namespace pgtlsmon::testing
