// capture/pcap_source.h: libpcap as a PacketSource, for live capture and as a file fallback.
//
// Live capture is passive: this class never calls pcap_inject()/pcap_sendpacket().
//
// Live semantics of Next() differ from a file's: Next() waits at most
// LiveOptions::poll_timeout_ms for a packet and returns false when none arrived, so the
// caller's loop can check a stop flag. A live source never ends by itself; at_end() tells the
// two kinds of false apart. Callers that run their own poll() loop use selectable_fd() and
// NextWithTimeout(pkt, 0).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "capture/live_source.h"
#include "capture/packet_source.h"

struct pcap;  // libpcap's pcap_t, kept out of this header

namespace pgtlsmon::capture {

struct LiveOptions {
  std::string interface;        // "any" captures on every interface (Linux SLL2/SLL)
  int snaplen = 262144;         // bytes kept per packet
  int buffer_bytes = 32 << 20;  // kernel ring buffer size
  bool promiscuous = false;
  bool immediate = true;      // deliver packets as they arrive, no batching delay
  int poll_timeout_ms = 200;  // how long Next() waits before returning false
  std::string filter;         // BPF expression (see BuildPortFilter); "" = everything
};

// pcap_stats(): ps_recv/ps_drop/ps_ifdrop. Counters since the capture began.
struct CaptureStats {
  uint64_t received = 0;
  uint64_t dropped = 0;     // by the kernel: the buffer was full
  uint64_t if_dropped = 0;  // by the interface or its driver (not supported everywhere)
};

// A BPF filter for TCP traffic on `ports`: "tcp port 5432 or tcp port 6432"; "tcp" when
// `ports` is empty (any port: the parser recognises PostgreSQL by content). With `vlan`,
// VLAN-tagged frames are matched too ("F or (vlan and F)"); only for Ethernet interfaces (Linux
// normally strips the tag before libpcap sees it, so this matters for trunk/mirror ports).
// `tunnel_udp_ports` (VXLAN and GENEVE): also pass the tunnels the parser decapsulates (UDP to
// those ports, GRE, IP in IP), whose inner TCP ports a filter cannot see.
std::string BuildPortFilter(std::span<const uint16_t> ports, bool vlan = false,
                            std::span<const uint16_t> tunnel_udp_ports = {});

class PcapSource final : public PacketSource {
 public:
  // Opens a live capture: pcap_create + snaplen, buffer size, promiscuity, immediate mode,
  // nanosecond timestamps when available, pcap_activate, the filter, non-blocking mode.
  static absl::StatusOr<std::unique_ptr<PcapSource>> OpenLive(const LiveOptions& options);
  // Reads a capture file through libpcap (the fallback when FileSource does not know the
  // format), with nanosecond timestamps. `filter` as for live captures.
  static absl::StatusOr<std::unique_ptr<PcapSource>> OpenOffline(const std::string& path,
                                                                 const std::string& filter = "");
  ~PcapSource() override;
  PcapSource(const PcapSource&) = delete;
  PcapSource& operator=(const PcapSource&) = delete;

  // Files: false at the end. Live: false when no packet arrived within poll_timeout_ms.
  absl::StatusOr<bool> Next(RawPacket* pkt) override;
  // Live: waits up to timeout_ms (0: does not wait, < 0: waits forever) for a packet.
  // Files: same as Next().
  absl::StatusOr<bool> NextWithTimeout(RawPacket* pkt, int timeout_ms);

  // Compiles and installs a new BPF filter ("" removes filtering).
  absl::Status SetFilter(const std::string& filter);
  // The descriptor to poll() for readability (live only; -1 when the platform has none).
  int selectable_fd() const { return fd_; }
  // The data link type (DLT_ value, e.g. 1 Ethernet, 113 SLL, 276 SLL2, 12 raw IP).
  uint32_t linktype() const { return linktype_; }
  bool live() const { return live_; }
  bool at_end() const { return at_end_; }
  const std::string& name() const { return name_; }
  // Kernel drop counters (live captures).
  absl::StatusOr<CaptureStats> Stats() const;
  // Makes a blocked Next() of another thread return soon (pcap_breakloop); safe from a
  // signal handler's thread of control only as pcap_breakloop is.
  void BreakLoop();

 private:
  PcapSource(pcap* handle, std::string name, bool live, int poll_timeout_ms);
  absl::Status Error(absl::string_view what) const;

  pcap* handle_ = nullptr;
  std::string name_;
  bool live_ = false;
  bool nanos_ = false;
  bool at_end_ = false;
  int fd_ = -1;
  int poll_timeout_ms_ = 200;
  uint32_t linktype_ = 0;
};

// libpcap as a LiveSource (`watch --capture pcap`): buffered mode (TPACKET_V3), the port
// filter, the kernel's drop counters.
class PcapLiveSource final : public LiveSource {
 public:
  // `ports` empty: every TCP port. `tunnel_udp_ports`: see BuildPortFilter.
  static absl::StatusOr<std::unique_ptr<PcapLiveSource>> Open(
      const std::string& interface, std::span<const uint16_t> ports, size_t buffer_bytes,
      std::span<const uint16_t> tunnel_udp_ports = {});
  absl::StatusOr<bool> NextWithTimeout(RawPacket* pkt, int timeout_ms) override {
    return src_->NextWithTimeout(pkt, timeout_ms);
  }
  std::string_view kind() const override { return "pcap"; }
  int max_delivery_delay_ms() const override;
  absl::StatusOr<LiveStats> ReadCounters() override;

 private:
  PcapLiveSource(std::unique_ptr<PcapSource> src, std::string interface)
      : src_(std::move(src)), interface_(std::move(interface)) {}
  std::unique_ptr<PcapSource> src_;
  std::string interface_;
};

}  // namespace pgtlsmon::capture
