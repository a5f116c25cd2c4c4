// capture/bpf_common.h: what the two eBPF back ends share, written once.
//
// The socket filter (BpfSource, bpf_source.h) and the TC classifier (BpfTcSource,
// bpf_tc_source.h) run the same kernel logic (bpf/capture_common.bpf.h): the same flow map,
// done state, per-direction cap and per-CPU counters, and the same read-only configuration.
// They differ only in how packets reach user space (a TPACKET_V3 ring, a BPF ring buffer).
// EbpfSource holds what they share: the configuration and its checks, loading with libbpf's
// log held back when privileges are what is missing, the flow map (MarkDone, LookupFlow), the
// kernel counters and their translation into LiveStats.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "capture/bpf_abi.h"
#include "capture/live_source.h"

namespace pgtlsmon::capture {

// The configuration both attach points take.
struct EbpfConfig {
  std::string interface = "any";         // an interface name, or "any" (socket filter only)
  std::vector<uint16_t> ports = {5432};  // at most PGTLS_MAX_PORTS (8)
  bool any_port = false;                 // every TCP connection (classification by content)
  uint32_t per_dir_cap = PGTLS_DEFAULT_PER_DIR_CAP;    // payload bytes per direction, handshake
  uint32_t flow_entries = PGTLS_DEFAULT_FLOW_ENTRIES;  // LRU flow map size
  size_t ring_bytes = size_t{8} << 20;                 // the ring to user space
  // UDP destination ports of VXLAN and GENEVE the programs decapsulate (--vxlan-ports,
  // --geneve-ports: the parser's DecapConfig); at most PGTLS_MAX_PORTS (8) each, may be empty.
  std::vector<uint16_t> vxlan_ports = {4789, 8472};
  std::vector<uint16_t> geneve_ports = {6081};
};

// Cumulative counters. Kernel-side counters are summed over CPUs at each call.
struct BpfStats {
  uint64_t packets_seen = 0;  // TCP packets on a monitored port (skb->len for bytes)
  uint64_t bytes_seen = 0;
  uint64_t packets_passed = 0;   // handed to the ring by the program
  uint64_t bytes_passed = 0;     // snap lengths asked for
  uint64_t packets_skipped = 0;  // flows marked done: counted, not copied
  uint64_t bytes_skipped = 0;
  uint64_t packets_cut = 0;      // passed with the payload cut at the per-direction cap
  uint64_t packets_ignored = 0;  // not IP/TCP on a monitored port
  uint64_t flows_created = 0;
  std::array<uint64_t, abi::kNumDropReasons> drops{};  // by abi::pgtls_drop_reason
  // Packets decapsulated in the kernel, by abi::pgtls_tunnel (each layer stripped counts).
  std::array<uint64_t, abi::kNumTunnels> tunnel_packets{};
  // Frames user space received, and frames lost because its ring was full (socket filter:
  // PACKET_STATISTICS tp_packets/tp_drops; TC: records read, drops[PGTLS_DROP_RINGBUF_FULL]).
  uint64_t ring_packets = 0;
  uint64_t ring_drops = 0;
  uint64_t ring_freeze_q_cnt = 0;
  // Times the reader slept in poll/epoll_wait, and how many of those ended with data (a wake-up)
  // rather than the timeout.
  uint64_t polls = 0;
  uint64_t wakeups = 0;
};

// Flow-map and counter access on any file descriptors with the layout of
// bpf/capture_common.bpf.h (tests use them on their own skeletons).
namespace bpf_maps {
// Marks the connection done in the flow map `map_fd` (see EbpfSource::MarkDone).
absl::Status MarkDone(int map_fd, const FlowTuple& flow);
absl::StatusOr<abi::pgtls_flow_value> LookupFlow(int map_fd, const FlowTuple& flow);
// The kernel counters (stats_pcpu, drops_pcpu) summed over CPUs into *out.
absl::Status ReadCounters(int stats_fd, int drops_fd, BpfStats* out);
// The capabilities loading (and, with `net_admin`, attaching a TC program) needs that this
// process lacks: "CAP_BPF and CAP_PERFMON", ...; empty when none is missing, when the process
// has CAP_SYS_ADMIN, or when /proc/self/status cannot be read.
std::string MissingCapabilities(bool net_admin);
}  // namespace bpf_maps

class EbpfSource : public LiveSource {
 public:
  std::string_view kind() const override { return "ebpf"; }
  // Tells the kernel that this connection's record is final: from now on only its SYN/FIN/RST
  // headers are passed; everything else is counted as skipped. Creates the entry if the LRU map
  // evicted it. Per-flow counters updated by the kernel between this call's read and write of
  // the entry may be lost (the per-CPU totals in Stats() are exact).
  absl::Status MarkDone(const FlowTuple& flow) override;
  // The kernel's entry for a connection (NotFound if absent or evicted).
  absl::StatusOr<abi::pgtls_flow_value> LookupFlow(const FlowTuple& flow) const;
  // Thread-safe; may be called from the metrics thread while another thread reads packets.
  virtual absl::StatusOr<BpfStats> Stats() = 0;
  // source "ebpf:<interface>", the kernel's drop reasons, "ring_full" for the ring to user
  // space (the TPACKET ring or the BPF ring buffer), skipped = the done flows' packets.
  absl::StatusOr<LiveStats> ReadCounters() override;

  // The kernel's canonical key for a connection (bpf/pgtls_abi.h), same for both directions.
  static abi::pgtls_flow_key MakeKey(const FlowTuple& flow);

 protected:
  explicit EbpfSource(std::string interface) : interface_(std::move(interface)) {}
  // The maps' descriptors, once the programs are loaded (owned by the derived class).
  void SetMaps(int flows_fd, int stats_fd, int drops_fd) {
    flows_fd_ = flows_fd;
    stats_fd_ = stats_fd;
    drops_fd_ = drops_fd;
  }
  absl::Status ReadKernelCounters(BpfStats* out) const;

 private:
  std::string interface_;
  int flows_fd_ = -1;
  int stats_fd_ = -1;
  int drops_fd_ = -1;
};

// For the back ends' Create() only.
namespace bpf_load {
// "at most 8 ports", "no ports", the cap's range: InvalidArgument.
absl::Status CheckConfig(const EbpfConfig& cfg);
// An errno as a status: "<prefix>: <what>".
absl::Status Errno(absl::string_view prefix, int err, absl::string_view what);
// A failed load or attach: names the capabilities that are missing when EPERM/EACCES is
// explained by them (`net_admin`: the TC attach point's CAP_NET_ADMIN too).
absl::Status LoadError(absl::string_view prefix, int err, absl::string_view what, bool net_admin);

// The skeleton's read-only configuration, identical in both BPF objects; FailedPrecondition
// when the object was built for another ABI.
template <typename Rodata>
absl::Status Configure(Rodata* ro, const EbpfConfig& cfg) {
  if (ro->cfg_abi_version != PGTLS_ABI_VERSION) {
    return absl::FailedPreconditionError(
        absl::StrCat("eBPF capture: BPF object ABI version ", ro->cfg_abi_version,
                     " but user space expects ", PGTLS_ABI_VERSION, " (stale build?)"));
  }
  for (size_t i = 0; i < PGTLS_MAX_PORTS; ++i) {
    ro->cfg_ports[i] = i < cfg.ports.size() ? cfg.ports[i] : 0;
  }
  ro->cfg_nports = static_cast<uint32_t>(cfg.ports.size());
  ro->cfg_any_port = cfg.any_port ? 1 : 0;
  ro->cfg_per_dir_cap = cfg.per_dir_cap;
  for (size_t i = 0; i < PGTLS_MAX_PORTS; ++i) {
    ro->cfg_vxlan_ports[i] = i < cfg.vxlan_ports.size() ? cfg.vxlan_ports[i] : 0;
    ro->cfg_geneve_ports[i] = i < cfg.geneve_ports.size() ? cfg.geneve_ports[i] : 0;
  }
  ro->cfg_nvxlan_ports = static_cast<uint32_t>(cfg.vxlan_ports.size());
  ro->cfg_ngeneve_ports = static_cast<uint32_t>(cfg.geneve_ports.size());
  return absl::OkStatus();
}

// While alive, libbpf's messages are held back; on destruction they go to stderr unless
// Quiet() was called (a plain lack of privilege, explained in one line instead).
class LibbpfLog {
 public:
  LibbpfLog();
  ~LibbpfLog();
  LibbpfLog(const LibbpfLog&) = delete;
  LibbpfLog& operator=(const LibbpfLog&) = delete;
  void Quiet() { quiet_ = true; }

 private:
  std::string text_;
  bool quiet_ = false;
};
}  // namespace bpf_load

}  // namespace pgtlsmon::capture
