// capture/live_source.h: the interface every live capture back end implements, and the one
// call that opens the back end a user asked for.
//
// A LiveSource is a PacketSource that never ends by itself: Next() blocks until a packet
// arrives or RequestStop() is called, NextWithTimeout() gives up after a timeout so that a
// caller's loop can do its housekeeping. Besides packets, a back end reports its own
// counters (Counters(): drops by reason, packets it did not copy) and may be told that a
// connection's record is final (MarkDone()), after which a kernel-side filter stops copying
// that connection's payload. The back ends: libpcap (PcapLiveSource, pcap_source.h), the eBPF
// socket filter (BpfSource, bpf_source.h) and the eBPF TC classifier (BpfTcSource,
// bpf_tc_source.h); the two eBPF ones share their maps and loading code (bpf_common.h). A new
// back end (AF_XDP, say) implements this class and gets a case in OpenLiveSource().
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "capture/packet_source.h"

namespace pgtlsmon::capture {

// One TCP connection, named by either direction. Addresses are network order, IPv4 as
// IPv4-mapped IPv6 (use From); ports are host order.
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

// A back end's own counters, cumulative since it was opened.
struct LiveStats {
  std::string source;            // "pcap:eth0", "ebpf:eth0" (the metrics' `source` label)
  uint64_t skipped_packets = 0;  // of connections marked done: counted, never copied to us
  uint64_t skipped_bytes = 0;
  std::vector<std::pair<std::string, uint64_t>> drops;  // reason -> packets lost
  // Packets the back end decapsulated itself, by tunnel type ("vxlan", ...; each layer stripped
  // counts): the eBPF programs. Empty for libpcap (the parser decapsulates and counts).
  std::vector<std::pair<std::string, uint64_t>> tunnel_packets;
  // Reads of the back end's counters (eBPF maps, pcap_stats) that failed: the values above are
  // then those of the last read that worked, never zeros.
  uint64_t read_errors = 0;
};

class LiveSource : public PacketSource {
 public:
  // Blocks until a packet arrives (true) or RequestStop() was called (false).
  absl::StatusOr<bool> Next(RawPacket* pkt) override;
  // Waits at most timeout_ms (0: does not wait; -1: forever) for a packet; false when none
  // came. pkt->data is valid until the next call.
  virtual absl::StatusOr<bool> NextWithTimeout(RawPacket* pkt, int timeout_ms) = 0;
  // Makes a blocked Next() return false soon. Thread- and signal-safe.
  void RequestStop() { stop_.store(true, std::memory_order_relaxed); }

  // "pcap" or "ebpf": pgtlsmon_build_info{capture}.
  virtual std::string_view kind() const = 0;
  // For the log: the kind and, for eBPF, the attach point.
  virtual std::string description() const { return std::string(kind()); }
  // Capabilities (CAP_* numbers) the back end still needs once open; all others can go.
  virtual std::vector<int> caps_to_keep() const { return {}; }
  // The longest a captured packet may wait in the kernel before NextWithTimeout() can return
  // it (a ring's block timeout): a drain at stop waits this long for stragglers.
  virtual int max_delivery_delay_ms() const { return 0; }
  // The back end's counters. A read that fails counts in read_errors and keeps the values of
  // the last read that worked. Thread-safe: the metrics thread may call it while another thread
  // reads packets.
  LiveStats Counters();
  // The connection's record is final: the back end may stop delivering its payload. A failure
  // only costs copies, never records.
  virtual absl::Status MarkDone(const FlowTuple& /*flow*/) { return absl::OkStatus(); }

 protected:
  // Reads the back end's counters once (called by Counters() under its lock).
  virtual absl::StatusOr<LiveStats> ReadCounters() = 0;

  // How often Next() looks at the stop flag while nothing arrives.
  static constexpr int kStopPollMs = 100;
  bool stop_requested() const { return stop_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> stop_{false};
  std::mutex counters_mu_;
  LiveStats last_counters_;  // the last read that worked
  uint64_t counter_read_errors_ = 0;
};

struct LiveSourceConfig {
  std::string interface;               // an interface name, or "any"
  std::string backend = "auto";        // auto (eBPF, else libpcap) | ebpf | pcap
  std::string ebpf_attach = "socket";  // socket | tc
  std::vector<uint16_t> ports = {5432};
  bool any_port = false;                   // every TCP connection (classification by content)
  size_t buffer_bytes = size_t{32} << 20;  // libpcap's kernel buffer, or the eBPF ring
  // UDP ports of VXLAN and GENEVE (--vxlan-ports, --geneve-ports). libpcap's filter passes
  // them, GRE and IP in IP whole (it cannot see the inner TCP ports; the parser decapsulates);
  // the eBPF programs decapsulate in the kernel and pass only the inner handshakes.
  std::vector<uint16_t> vxlan_ports = {4789, 8472};
  std::vector<uint16_t> geneve_ports = {6081};
};

// Opens the back end cfg.backend asks for. With "auto", a failure to load eBPF is explained in
// *note and libpcap is used instead. Errors name the interface or the missing privilege.
absl::StatusOr<std::unique_ptr<LiveSource>> OpenLiveSource(const LiveSourceConfig& cfg,
                                                           std::string* note);

}  // namespace pgtlsmon::capture
