// app/privileges.h: give up capabilities once the capture is open.
//
// What each back end needs, and when (measured on Linux 6.18, see bpf/README.md):
//   pcap  CAP_NET_RAW to open the socket; nothing after activation.
//   ebpf  CAP_BPF + CAP_PERFMON (or CAP_SYS_ADMIN) to load the program, CAP_NET_RAW for the
//         AF_PACKET socket; nothing afterwards: MarkDone() and the counters use map file
//         descriptors already held, and bpf() on an fd we own checks no capability.
// So `watch` calls DropCapabilities(source.caps_to_keep()) once capture::OpenLiveSource()
// succeeded (the TC attach point keeps CAP_NET_ADMIN to detach at exit).
#pragma once

#include <vector>

#include "absl/status/status.h"

namespace pgtlsmon::app {

// Keeps only the capabilities in `keep` (CAP_* numbers from <linux/capability.h>) in the
// effective, permitted and inheritable sets, clears the ambient set, and removes every other
// capability from the bounding set where allowed (PR_CAPBSET_DROP needs CAP_SETPCAP, so it is
// done before the effective set loses it; without CAP_SETPCAP the bounding set stays as it is,
// which is harmless once permitted is empty). Also sets PR_SET_NO_NEW_PRIVS so no execve can
// regain them. Affects the calling thread; call it before starting other threads (the HTTP
// server's threads started earlier keep their own credentials on Linux). Idempotent.
absl::Status DropCapabilities(const std::vector<int>& keep);

}  // namespace pgtlsmon::app
