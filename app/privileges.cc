// app/privileges.cc: see privileges.h. Uses the raw capget/capset system calls and prctl, so
// libcap is not a dependency.
#include "app/privileges.h"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "fmt/core.h"

namespace pgtlsmon::app {
namespace {

absl::Status Err(const char* what) {
  return absl::ErrnoToStatus(errno, fmt::format("dropping capabilities: {}", what));
}

int LastCap() {
  // The kernel's highest capability number; 40 (CAP_CHECKPOINT_RESTORE) when unknown.
  if (FILE* f = std::fopen("/proc/sys/kernel/cap_last_cap", "r")) {
    int n = 0;
    const bool ok = std::fscanf(f, "%d", &n) == 1;
    std::fclose(f);
    if (ok && n > 0 && n < 64) return n;
  }
  return 40;
}

}  // namespace

absl::Status DropCapabilities(const std::vector<int>& keep) {
  uint64_t keep_mask = 0;
  for (int c : keep) {
    if (c < 0 || c >= 64) {
      return absl::InvalidArgumentError(fmt::format("dropping capabilities: bad capability {}", c));
    }
    keep_mask |= uint64_t{1} << c;
  }

  __user_cap_header_struct hdr{};
  hdr.version = _LINUX_CAPABILITY_VERSION_3;
  hdr.pid = 0;
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &hdr, data) != 0) return Err("capget");
  const uint64_t permitted = uint64_t{data[0].permitted} | uint64_t{data[1].permitted} << 32;

  // The bounding set first: PR_CAPBSET_DROP needs CAP_SETPCAP in the effective set.
  if ((permitted >> CAP_SETPCAP & 1) != 0) {
    data[0].effective |= 1u << CAP_SETPCAP;
    if (syscall(SYS_capset, &hdr, data) != 0) return Err("capset (raise CAP_SETPCAP)");
    for (int c = 0, last = LastCap(); c <= last; ++c) {
      if ((keep_mask >> c & 1) == 0 && prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1 &&
          prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0) {
        return Err("PR_CAPBSET_DROP");
      }
    }
  }
  // Ambient capabilities would survive an execve: clear them (EINVAL: kernel without them).
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
    return Err("PR_CAP_AMBIENT_CLEAR_ALL");
  }

  const uint64_t kept = permitted & keep_mask;
  for (int i = 0; i < 2; ++i) {
    const auto word = static_cast<uint32_t>(kept >> (32 * i));
    data[i].effective = word;
    data[i].permitted = word;
    data[i].inheritable &= word;
  }
  if (syscall(SYS_capset, &hdr, data) != 0) return Err("capset");
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return Err("PR_SET_NO_NEW_PRIVS");
  return absl::OkStatus();
}

}  // namespace pgtlsmon::app
