// capture/bpf_source.h: the eBPF capture backend (`pgtlsmon watch --capture ebpf`).
//
// A socket filter (bpf/capture.bpf.c) on an AF_PACKET socket (ETH_P_ALL, one interface or all of
// them) with a TPACKET_V3 mmap ring. The kernel program passes only the handshake bytes of TCP
// connections on the monitored ports (at most `per_dir_cap` payload bytes per direction) and,
// once user space calls MarkDone() for a connection whose record is final, only its SYN/FIN/RST
// headers; the rest is counted (Stats(): skipped packets/bytes) but never copied.
//
// Frames come with the link-layer header of their device: Ethernet for Ethernet-like devices
// (physical NICs, veth, bridges, bonds, VLAN devices, and lo, whose header has zero MACs), raw IP
// (kLinkRaw) for devices without a link-layer header (tun, WireGuard). Other link types are not
// parsed by the kernel program. An outer VLAN tag that the kernel moved into the skb metadata is
// not re-inserted into the frame (the parser does not need it).
// With interface "any", a packet crossing several devices (a bridge and its port) is seen once
// per device, and each copy counts against the cap.
//
// Needs CAP_BPF + CAP_PERFMON to load (CAP_SYS_ADMIN instead, and on kernels before 5.8) and
// CAP_NET_RAW for the AF_PACKET socket; nothing once Create() has returned (MarkDone, LookupFlow
// and Stats use file descriptors already held). Measured on Linux 6.18: without CAP_PERFMON the
// verifier refuses the program ("pointer arithmetic ... prohibited for !root"); CAP_NET_ADMIN is
// not needed for a socket filter.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "capture/bpf_abi.h"
#include "capture/packet_source.h"

namespace pgtlsmon::capture {

struct BpfConfig {
  std::string interface = "any";         // an interface name, or "any" (all, lo included)
  std::vector<uint16_t> ports = {5432};  // at most PGTLS_MAX_PORTS (8)
  bool any_port = false;                 // every TCP connection (classification by content)
  uint32_t per_dir_cap = PGTLS_DEFAULT_PER_DIR_CAP;    // payload bytes per direction, handshake
  uint32_t flow_entries = PGTLS_DEFAULT_FLOW_ENTRIES;  // LRU flow map size
  size_t ring_bytes = size_t{8} << 20;  // TPACKET_V3 ring; rounded to whole blocks, >= 2 blocks
  uint32_t block_timeout_ms = 10;       // a partly filled block is handed over after this
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
  uint64_t ring_packets = 0;  // PACKET_STATISTICS tp_packets: frames the socket accepted
  uint64_t ring_drops = 0;    // tp_drops: accepted but the ring was full
  uint64_t ring_freeze_q_cnt = 0;
  // Times the reader slept in poll/epoll_wait, and how many of those ended with data (a wake-up)
  // rather than the timeout.
  uint64_t polls = 0;
  uint64_t wakeups = 0;
};

// One TCP connection, named by either direction. Addresses are network order, IPv4 as
// IPv4-mapped IPv6 (use FromIpv4); ports are host order.
struct FlowTuple {
  std::array<uint8_t, 16> saddr{};
  std::array<uint8_t, 16> daddr{};
  uint16_t sport = 0;
  uint16_t dport = 0;

  // Addresses of 4 bytes (IPv4) or 16 bytes (IPv6), network order. Other sizes give a zero
  // address.
  static FlowTuple From(std::span<const uint8_t> saddr, uint16_t sport,
                        std::span<const uint8_t> daddr, uint16_t dport);
};

// Flow-map and counter access shared by both attach points (BpfSource, BpfTcSource): the maps
// have the same layout in both BPF objects (bpf/capture_common.bpf.h).
namespace bpf_maps {
// MarkDone on the flow map `map_fd` (see BpfSource::MarkDone).
absl::Status MarkDone(int map_fd, const FlowTuple& flow);
absl::StatusOr<abi::pgtls_flow_value> LookupFlow(int map_fd, const FlowTuple& flow);
// The kernel counters (stats_pcpu, drops_pcpu) summed over CPUs into *out.
absl::Status ReadCounters(int stats_fd, int drops_fd, BpfStats* out);
// The capabilities loading (and, with `net_admin`, attaching a TC program) needs that this
// process lacks: "CAP_BPF and CAP_PERFMON", ...; empty when none is missing, when the process
// has CAP_SYS_ADMIN, or when /proc/self/status cannot be read.
std::string MissingCapabilities(bool net_admin);
}  // namespace bpf_maps

class BpfSource final : public PacketSource {
 public:
  // Loads the program, creates and binds the socket. Errors name the step and the privilege
  // that is missing, e.g. "needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN); this process lacks
  // CAP_PERFMON". libbpf's own messages are not printed when privileges are what is missing.
  static absl::StatusOr<std::unique_ptr<BpfSource>> Create(const BpfConfig& cfg);
  ~BpfSource() override;
  BpfSource(const BpfSource&) = delete;
  BpfSource& operator=(const BpfSource&) = delete;

  // Blocks until a packet arrives (true) or RequestStop() was called (false). pkt->data is
  // valid until the next call to Next/NextWithTimeout.
  absl::StatusOr<bool> Next(RawPacket* pkt) override;
  // As Next, but returns false after timeout_ms (0: do not wait; -1: wait forever).
  absl::StatusOr<bool> NextWithTimeout(RawPacket* pkt, int timeout_ms);
  // The socket, for poll()/epoll (readable when a block is ready).
  int fd() const;
  // Makes a blocked Next() return false within ~100 ms. Thread- and signal-safe.
  void RequestStop() { stop_.store(true, std::memory_order_relaxed); }

  // Tells the kernel that this connection's record is final: from now on only its SYN/FIN/RST
  // headers are passed; everything else is counted as skipped. Creates the entry if the LRU map
  // evicted it. Per-flow counters updated by the kernel between this call's read and write of
  // the entry may be lost (the per-CPU totals in Stats() are exact).
  absl::Status MarkDone(const FlowTuple& flow);
  // The kernel's entry for a connection (NotFound if absent or evicted).
  absl::StatusOr<abi::pgtls_flow_value> LookupFlow(const FlowTuple& flow) const;
  // Thread-safe; may be called from the metrics thread while another thread reads packets.
  absl::StatusOr<BpfStats> Stats();

  // The kernel's canonical key for a connection (bpf/pgtls_abi.h), same for both directions.
  static abi::pgtls_flow_key MakeKey(const FlowTuple& flow);

  struct Impl;

 private:
  explicit BpfSource(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> stop_{false};
};

}  // namespace pgtlsmon::capture
