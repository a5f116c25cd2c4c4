// parser/packet_decoder.h: link layer, tunnels, IPv4/IPv6 and TCP headers of one captured frame.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "parser/byte_reader.h"
#include "parser/events.h"
#include "parser/parse_stats.h"

namespace pgtlsmon::parser {

inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpPsh = 0x08;
inline constexpr uint8_t kTcpAck = 0x10;

// A decoded TCP segment. `payload` points into the frame: valid only as long as the frame.
struct TcpSegment {
  IpAddress src;
  IpAddress dst;
  uint16_t sport = 0;
  uint16_t dport = 0;
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint8_t flags = 0;
  std::span<const uint8_t> payload;  // the captured payload bytes (Ethernet padding removed)
  uint32_t payload_wire_len = 0;     // payload length per the IP header (> payload.size() when
                                     // the snap length cut the frame)
  // The outermost encapsulation the segment arrived in (type kNone: it came bare). Beside the
  // connection's addresses, never part of them: a mirrored copy and the original are one flow.
  TunnelInfo tunnel;
};

// Which UDP destination ports carry VXLAN and GENEVE (`--vxlan-ports`, `--geneve-ports`).
struct DecapConfig {
  std::vector<uint16_t> vxlan_ports = {4789, 8472};
  std::vector<uint16_t> geneve_ports = {6081};
};

// Encapsulations stripped from one frame at most; a frame nested deeper is dropped and counted
// (Stage::kTunnel, Reason::kTooDeep).
inline constexpr int kMaxTunnelDepth = 4;

// Decodes `frame` of link type `linktype` (capture/packet_source.h's kLink* values; DLT_RAW's
// 12 and 14 are accepted too, as libpcap reports them for raw-IP captures). Ethernet may carry
// any stack of 802.1Q/802.1ad/0x9100 tags; IPv6 extension headers are walked.
// The IP length bounds the segment (Ethernet padding is dropped). A frame cut by the snap
// length inside the TCP payload is kOk: `payload` is what was captured and payload_wire_len
// what was sent; a frame cut inside the IP or TCP headers (options included) is kMalformed.
// kOk: *out is a TCP segment. kNotThisProtocol: not TCP (UDP, ARP, ...), nothing counted.
// kMalformed: counted in *stats under the stage that failed (incl. IP fragments, which are not
// reassembled: Stage::kIp, Reason::kIpFragment).
// Tunnels are decapsulated down to the innermost IP/TCP: VXLAN and GENEVE on the UDP ports of
// `decap`, GRE (checksum, key, sequence; IPv4, IPv6 or Ethernet payload), ERSPAN I, II and III,
// IPv4/IPv6 in IPv4/IPv6, VLAN tags at every Ethernet layer, at most kMaxTunnelDepth deep. The
// segment's addresses are the innermost ones; out->tunnel is the outermost layer. A tunnel
// that cannot be decoded is kMalformed under Stage::kTunnel (outer fragments, unsupported
// payloads, bad versions, truncation); each layer stripped counts in stats->tunnel_packets.
ParseResult DecodeTcpSegment(uint32_t linktype, std::span<const uint8_t> frame,
                             const DecapConfig& decap, TcpSegment* out, ParseStats* stats);
// The same with the default ports.
ParseResult DecodeTcpSegment(uint32_t linktype, std::span<const uint8_t> frame, TcpSegment* out,
                             ParseStats* stats);

}  // namespace pgtlsmon::parser
