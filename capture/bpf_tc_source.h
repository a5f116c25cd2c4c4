// capture/bpf_tc_source.h: the eBPF capture backend on the TC attach point
// (`pgtlsmon watch --capture ebpf --ebpf-attach tc`).
//
// Two direct-action classifiers (bpf/capture_tc.bpf.c) on one interface's clsact qdisc, ingress
// and egress, with the same flow map, cap, done state and counters as the socket filter
// (BpfSource): they pass only the handshake bytes of TCP connections on the monitored ports, and
// nothing but SYN/FIN/RST headers once MarkDone() was called. Passed frames are written to a BPF
// ring buffer (one struct pgtls_pkt_event + frame bytes per packet); most records do not wake
// user space (BPF_RB_NO_WAKEUP), which reads the ring at least every `poll_ms` and is woken
// early on SYN/FIN/RST or when `wakeup_bytes` are waiting.
//
// The program never changes a packet's fate (it returns TC_ACT_UNSPEC). It does change the
// interface's setup: Create() adds a clsact qdisc if there is none and removes it on
// destruction only if it created it; otherwise it detaches just its own two filters. A killed
// process (SIGKILL) leaves its filters attached (netlink TC filters are not tied to the process)
// until the qdisc or the interface is removed, e.g. `tc qdisc del dev IFACE clsact`.
//
// One interface only: "any" is refused (TC attaches per device). Frames are Ethernet (lo and
// veth included) or raw IP for devices without a link-layer header.
//
// Needs CAP_BPF + CAP_PERFMON + CAP_NET_ADMIN (or CAP_SYS_ADMIN) to load and attach, and keeps
// needing CAP_NET_ADMIN to detach at exit: app/watch.cc keeps that one capability.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "capture/bpf_common.h"

namespace pgtlsmon::capture {

struct BpfTcConfig : EbpfConfig {
  // interface: one interface; "any" is refused. ring_bytes: the BPF ring buffer, rounded up to
  // a power of two.
  uint32_t wakeup_bytes = PGTLS_DEFAULT_WAKEUP_BYTES;  // forced wake-up at this backlog
  uint32_t poll_ms = 10;  // the longest a record waits in the ring without a wake-up
};

class BpfTcSource final : public EbpfSource {
 public:
  static absl::StatusOr<std::unique_ptr<BpfTcSource>> Create(const BpfTcConfig& cfg);
  // Detaches the filters, or removes the clsact qdisc if Create() added it.
  ~BpfTcSource() override;
  BpfTcSource(const BpfTcSource&) = delete;
  BpfTcSource& operator=(const BpfTcSource&) = delete;

  absl::StatusOr<bool> NextWithTimeout(RawPacket* pkt, int timeout_ms) override;
  std::string description() const override;
  // The filters (or the clsact qdisc pgtlsmon added) are removed at exit: CAP_NET_ADMIN.
  std::vector<int> caps_to_keep() const override;
  int max_delivery_delay_ms() const override { return static_cast<int>(poll_ms_); }
  // ring_packets: records read from the ring; ring_drops: records lost because it was full
  // (also drops[PGTLS_DROP_RINGBUF_FULL]).
  absl::StatusOr<BpfStats> Stats() override;

  // Whether Create() added the clsact qdisc (and the destructor will remove it).
  bool created_qdisc() const;
  // The two programs, for tests (BPF_PROG_TEST_RUN) and measurements (bpf_prog_info).
  int ingress_prog_fd() const;
  int egress_prog_fd() const;

  struct Impl;

 private:
  BpfTcSource(std::unique_ptr<Impl> impl, const BpfTcConfig& cfg);
  std::unique_ptr<Impl> impl_;
  uint32_t poll_ms_;
};

}  // namespace pgtlsmon::capture
