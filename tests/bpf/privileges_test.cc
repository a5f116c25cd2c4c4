// app/privileges.cc: DropCapabilities in a forked child, checked through /proc/self/status, and
// the claim it rests on: once BpfSource is open, MarkDone/LookupFlow/Stats/Next need no
// capability. Root-only cases GTEST_SKIP otherwise.
#include "app/privileges.h"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <fstream>
#include <map>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

#ifdef PGTLS_HAVE_BPF
#include "capture/bpf_source.h"
#endif

namespace pgtlsmon::app {
namespace {

// "CapEff" -> value, for the Cap* and NoNewPrivs lines of /proc/self/status.
std::map<std::string, uint64_t> Status() {
  std::map<std::string, uint64_t> out;
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, colon);
    if (absl::StartsWith(key, "Cap")) out[key] = std::stoull(line.substr(colon + 1), nullptr, 16);
    if (key == "NoNewPrivs") out[key] = std::stoull(line.substr(colon + 1));
  }
  return out;
}

// Runs fn in a forked child; fn returns "" on success or a failure message.
template <typename Fn>
std::string InChild(Fn fn) {
  int fds[2];
  if (pipe(fds) != 0) return "pipe failed";
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    const std::string msg = fn();
    (void)!write(fds[1], msg.data(), msg.size());
    _exit(msg.empty() ? 0 : 1);
  }
  close(fds[1]);
  std::string msg;
  char buf[512];
  ssize_t n = 0;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) msg.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  if (!WIFEXITED(st)) return "child crashed: " + msg;
  if (WEXITSTATUS(st) != 0 && msg.empty()) return "child failed";
  return msg;
}

std::string Hex(uint64_t v) {
  char b[32];
  std::snprintf(b, sizeof(b), "%016llx", static_cast<unsigned long long>(v));
  return b;
}

TEST(DropCapabilities, RejectsBadNumbers) {
  EXPECT_EQ(InChild([] {
              auto st = DropCapabilities({64});
              return st.code() == absl::StatusCode::kInvalidArgument ? "" : "accepted 64";
            }),
            "");
}

TEST(DropCapabilities, UnprivilegedIsANoOp) {
  // Works with whatever the test runs with; afterwards nothing is effective beyond `keep`.
  EXPECT_EQ(InChild([]() -> std::string {
              if (auto st = DropCapabilities({}); !st.ok()) return std::string(st.message());
              auto s = Status();
              if (s["CapEff"] != 0) return "CapEff " + Hex(s["CapEff"]);
              if (s["CapPrm"] != 0) return "CapPrm " + Hex(s["CapPrm"]);
              if (s["CapAmb"] != 0) return "CapAmb " + Hex(s["CapAmb"]);
              if (s["NoNewPrivs"] != 1) return "NoNewPrivs not set";
              if (auto st = DropCapabilities({}); !st.ok())
                return "second call: " + std::string(st.message());
              return "";
            }),
            "");
}

TEST(DropCapabilities, KeepsOnlyWhatIsAsked) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (full capability sets)";
  EXPECT_EQ(InChild([]() -> std::string {
              const uint64_t raw = uint64_t{1} << CAP_NET_RAW;
              if (auto st = DropCapabilities({CAP_NET_RAW}); !st.ok())
                return std::string(st.message());
              auto s = Status();
              if (s["CapEff"] != raw) return "CapEff " + Hex(s["CapEff"]);
              if (s["CapPrm"] != raw) return "CapPrm " + Hex(s["CapPrm"]);
              if (s["CapBnd"] != raw) return "CapBnd " + Hex(s["CapBnd"]);
              if ((s["CapInh"] & ~raw) != 0) return "CapInh " + Hex(s["CapInh"]);
              if (s["NoNewPrivs"] != 1) return "NoNewPrivs not set";
              // Still allowed: a packet socket. Not any more: e.g. changing the hostname.
              const int fd = socket(AF_PACKET, SOCK_RAW, 0);
              if (fd < 0) return "AF_PACKET socket refused with CAP_NET_RAW kept";
              close(fd);
              if (sethostname("x", 1) == 0 || errno != EPERM) return "sethostname still allowed";
              return "";
            }),
            "");
}

TEST(DropCapabilities, DropsEverything) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (full capability sets)";
  EXPECT_EQ(InChild([]() -> std::string {
              if (auto st = DropCapabilities({}); !st.ok()) return std::string(st.message());
              auto s = Status();
              for (const char* k : {"CapEff", "CapPrm", "CapBnd", "CapAmb"}) {
                if (s[k] != 0) return std::string(k) + " " + Hex(s[k]);
              }
              if (socket(AF_PACKET, SOCK_RAW, 0) >= 0 || errno != EPERM) {
                return "AF_PACKET socket still allowed";
              }
              return "";
            }),
            "");
}

#ifdef PGTLS_HAVE_BPF
// The eBPF back end keeps working with no capability at all once it is open.
TEST(DropCapabilities, BpfSourceWorksAfterDroppingAll) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to load the program";
  EXPECT_EQ(InChild([]() -> std::string {
              capture::BpfConfig cfg;
              cfg.interface = "lo";
              cfg.ports = {15998};
              auto src = capture::BpfSource::Create(cfg);
              if (!src.ok()) return "Create: " + std::string(src.status().message());
              if (auto st = DropCapabilities({}); !st.ok()) return std::string(st.message());
              if (Status()["CapEff"] != 0) return "CapEff not empty";
              const uint8_t a[4] = {127, 0, 0, 1};
              const auto flow = capture::FlowTuple::From(a, 40000, a, 15998);
              if (auto st = (*src)->MarkDone(flow); !st.ok())
                return "MarkDone: " + std::string(st.message());
              auto v = (*src)->LookupFlow(flow);
              if (!v.ok()) return "LookupFlow: " + std::string(v.status().message());
              if (v->state != capture::abi::PGTLS_FLOW_DONE) return "state not DONE";
              if (auto s = (*src)->Stats(); !s.ok())
                return "Stats: " + std::string(s.status().message());
              capture::RawPacket pkt;
              if (auto r = (*src)->NextWithTimeout(&pkt, 0); !r.ok()) {
                return "Next: " + std::string(r.status().message());
              }
              return "";
            }),
            "");
}
#endif

}  // namespace
}  // namespace pgtlsmon::app
