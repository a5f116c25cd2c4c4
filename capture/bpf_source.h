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

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "capture/bpf_common.h"

namespace pgtlsmon::capture {

struct BpfConfig : EbpfConfig {
  // ring_bytes: the TPACKET_V3 ring; rounded to whole blocks, >= 2 blocks.
  uint32_t block_timeout_ms = 10;  // a partly filled block is handed over after this
};

class BpfSource final : public EbpfSource {
 public:
  // Loads the program, creates and binds the socket. Errors name the step and the privilege
  // that is missing, e.g. "needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN); this process lacks
  // CAP_PERFMON". libbpf's own messages are not printed when privileges are what is missing.
  static absl::StatusOr<std::unique_ptr<BpfSource>> Create(const BpfConfig& cfg);
  ~BpfSource() override;
  BpfSource(const BpfSource&) = delete;
  BpfSource& operator=(const BpfSource&) = delete;

  absl::StatusOr<bool> NextWithTimeout(RawPacket* pkt, int timeout_ms) override;
  std::string description() const override { return "ebpf (socket)"; }
  int max_delivery_delay_ms() const override { return static_cast<int>(block_timeout_ms_); }
  // The socket, for poll()/epoll (readable when a block is ready).
  int fd() const;
  // ring_packets/ring_drops: PACKET_STATISTICS of the socket.
  absl::StatusOr<BpfStats> Stats() override;

  struct Impl;

 private:
  BpfSource(std::unique_ptr<Impl> impl, const BpfConfig& cfg);
  std::unique_ptr<Impl> impl_;
  uint32_t block_timeout_ms_;
};

}  // namespace pgtlsmon::capture
