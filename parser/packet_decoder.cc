// parser/packet_decoder.cc: link layer -> (tunnels) -> IPv4/IPv6 -> TCP, on one captured frame.
//
// Runs on every packet: no allocation, no virtual calls, every read through ByteReader.
//
// Decisions worth knowing:
//  - The IP length fields bound everything below them (Ethernet padding and FCS are trimmed).
//    A frame shorter than its IP length is taken to be cut by the snap length: the payload is
//    what was captured and payload_wire_len says how much was on the wire. The IP and TCP
//    headers themselves (options included) must be captured whole, else kMalformed/kTruncated.
//  - An IPv4 total length of 0 (or an IPv6 payload length of 0 without a jumbo option) is what
//    TSO/GSO send paths show on the capturing host: the captured bytes are used as the length.
//  - Checksums are not verified: with checksum offload the capturing host sees garbage there.
//  - The protocol is checked before the fragment bits, so only fragments of TCP (and of
//    tunnels: GRE, IP in IP, UDP to a tunnel port) are counted; other fragmented UDP is
//    kNotThisProtocol like any UDP datagram.
//  - Tunnels (STYLE "Layers and tunnels"): each layer is a small decoder chosen by a table;
//    the dispatcher caps the nesting. The outermost tunnel's facts go beside the segment's
//    (innermost) addresses, so a mirror copy meets its original in one flow.
#include "parser/packet_decoder.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

namespace pgtlsmon::parser {
namespace {

// Link types (kept local: the parser does not depend on capture/; values are the
// LINKTYPE_/DLT_ numbers of capture/packet_source.h).
constexpr uint32_t kLinkNull = 0;
constexpr uint32_t kLinkEthernet = 1;
constexpr uint32_t kLinkDltRaw12 = 12;
constexpr uint32_t kLinkDltRaw14 = 14;
constexpr uint32_t kLinkRaw = 101;
constexpr uint32_t kLinkLoop = 108;
constexpr uint32_t kLinkLinuxSll = 113;
constexpr uint32_t kLinkIpv4 = 228;
constexpr uint32_t kLinkIpv6 = 229;
constexpr uint32_t kLinkLinuxSll2 = 276;

constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint16_t kEtherTypeIpv6 = 0x86dd;
constexpr uint16_t kEtherTypeVlan = 0x8100;   // 802.1Q
constexpr uint16_t kEtherTypeQinQ = 0x88a8;   // 802.1ad
constexpr uint16_t kEtherTypeQinQ2 = 0x9100;  // pre-standard QinQ

constexpr uint8_t kIpProtoHopByHop = 0;
constexpr uint8_t kIpProtoTcp = 6;
constexpr uint8_t kIpProtoRouting = 43;
constexpr uint8_t kIpProtoFragment = 44;
constexpr uint8_t kIpProtoAh = 51;
constexpr uint8_t kIpProtoNoNext = 59;
constexpr uint8_t kIpProtoDstOpts = 60;
constexpr uint8_t kIpProtoMobility = 135;

constexpr size_t kSllHeaderLen = 16;
constexpr size_t kSll2HeaderLen = 20;
constexpr size_t kIpv4MinHeaderLen = 20;
constexpr size_t kIpv6HeaderLen = 40;
constexpr size_t kTcpMinHeaderLen = 20;

enum class Net : uint8_t { kIpv4, kIpv6, kByVersion, kOther };

constexpr ParseResult Bad(ParseStats* stats, Stage stage, Reason reason) {
  if (stats != nullptr) stats->Add(stage, reason);
  return ParseResult::kMalformed;
}

constexpr Net NetFromEtherType(uint16_t type) {
  if (type == kEtherTypeIpv4) return Net::kIpv4;
  if (type == kEtherTypeIpv6) return Net::kIpv6;
  return Net::kOther;
}

constexpr bool IsVlanTag(uint16_t type) {
  return type == kEtherTypeVlan || type == kEtherTypeQinQ || type == kEtherTypeQinQ2;
}

// Skips any stack of VLAN tags after an ethertype field; *type ends as the inner ethertype.
inline bool SkipVlanTags(ByteReader& r, uint16_t* type) {
  while (IsVlanTag(*type)) {
    if (!r.Skip(2)) return false;  // TCI
    auto inner = r.U16Be();
    if (!inner) return false;
    *type = *inner;
  }
  return true;
}

// BSD AF_ values for NULL/LOOP: 2 is AF_INET everywhere; AF_INET6 is 24 (NetBSD/OpenBSD),
// 28 (FreeBSD) or 30 (macOS).
constexpr Net NetFromAddressFamily(uint32_t af) {
  if (af == 2) return Net::kIpv4;
  if (af == 24 || af == 28 || af == 30 || af == 10) return Net::kIpv6;  // 10: Linux AF_INET6
  return Net::kOther;
}

inline uint32_t ByteSwap32(uint32_t v) {
  return ((v & 0xffu) << 24) | ((v & 0xff00u) << 8) | ((v >> 8) & 0xff00u) | (v >> 24);
}

// Strips a link header other than Ethernet (a Layer of its own, as tunnels carry it too).
// On kOk, *net says what follows and `r` is positioned on it.
ParseResult DecodeLink(uint32_t linktype, ByteReader& r, Net* net, ParseStats* stats) {
  switch (linktype) {
    case kLinkLinuxSll: {
      // packet type(2) ARPHRD(2) addr len(2) addr(8) protocol(2)
      if (!r.Skip(kSllHeaderLen - 2)) return Bad(stats, Stage::kLink, Reason::kTruncated);
      auto type = r.U16Be();
      if (!type) return Bad(stats, Stage::kLink, Reason::kTruncated);
      uint16_t t = *type;
      if (!SkipVlanTags(r, &t)) return Bad(stats, Stage::kLink, Reason::kTruncated);
      *net = NetFromEtherType(t);
      return ParseResult::kOk;
    }
    case kLinkLinuxSll2: {
      // protocol(2) reserved(2) ifindex(4) ARPHRD(2) packet type(1) addr len(1) addr(8)
      auto type = r.U16Be();
      if (!type || !r.Skip(kSll2HeaderLen - 2)) {
        return Bad(stats, Stage::kLink, Reason::kTruncated);
      }
      uint16_t t = *type;
      if (!SkipVlanTags(r, &t)) return Bad(stats, Stage::kLink, Reason::kTruncated);
      *net = NetFromEtherType(t);
      return ParseResult::kOk;
    }
    case kLinkNull:
    case kLinkLoop: {
      auto raw = r.U32Be();
      if (!raw) return Bad(stats, Stage::kLink, Reason::kTruncated);
      // NULL is in the writer's byte order, LOOP in network order; real files get both
      // wrong, so take whichever order gives a small value (as tcpdump does).
      uint32_t af = (linktype == kLinkNull) ? ByteSwap32(*raw) : *raw;
      if ((af & 0xffff0000u) != 0) af = ByteSwap32(af);
      *net = NetFromAddressFamily(af);
      return ParseResult::kOk;
    }
    case kLinkRaw:
    case kLinkDltRaw12:
    case kLinkDltRaw14:
      *net = Net::kByVersion;
      return ParseResult::kOk;
    case kLinkIpv4:
      *net = Net::kIpv4;
      return ParseResult::kOk;
    case kLinkIpv6:
      *net = Net::kIpv6;
      return ParseResult::kOk;
    default:
      return Bad(stats, Stage::kLink, Reason::kUnsupportedLink);
  }
}

void StoreAddress(std::span<const uint8_t> bytes, bool is_v6, IpAddress* out) {
  out->bytes = {};
  std::memcpy(out->bytes.data(), bytes.data(), bytes.size());
  out->is_v6 = is_v6;
}

// One frame's decoding: a chain of small decoders (one per layer), each taking the bytes of
// its layer from `r`, leaving `r` on its payload and naming the next layer; Decode() below
// dispatches them through a table and owns the depth cap.
enum class Layer : uint8_t {
  kEthernet,
  kIpByVersion,
  kIpv4,
  kIpv6,
  kUdp,
  kVxlan,
  kGeneve,
  kGre,
  kErspan1,
  kErspan2,
  kErspan3,
  kTcp,
  kCount,
};

struct Ctx {
  ByteReader r;
  Layer next = Layer::kEthernet;
  const DecapConfig* decap = nullptr;
  TcpSegment* out = nullptr;
  ParseStats* stats = nullptr;
  // The innermost IP header so far: its addresses, and the length of its payload on the wire.
  IpAddress ip_src;
  IpAddress ip_dst;
  size_t l4_wire_len = 0;
  int depth = 0;  // encapsulations stripped
};

// A tunnel layer was stripped: counts it, and makes it the segment's tunnel if outermost.
ParseResult EnterTunnel(Ctx& c, TunnelType type, bool has_id, uint32_t id, Layer next) {
  if (++c.depth > kMaxTunnelDepth) return Bad(c.stats, Stage::kTunnel, Reason::kTooDeep);
  if (c.out->tunnel.type == TunnelType::kNone) {
    c.out->tunnel = TunnelInfo{type, has_id, id, c.ip_src, c.ip_dst};
  }
  if (c.stats != nullptr) ++c.stats->tunnel_packets[static_cast<size_t>(type)];
  c.next = next;
  return ParseResult::kOk;
}

ParseResult DecodeEthernet(Ctx& c) {
  if (!c.r.Skip(12)) return Bad(c.stats, Stage::kLink, Reason::kTruncated);  // dst, src MAC
  auto type = c.r.U16Be();
  if (!type) return Bad(c.stats, Stage::kLink, Reason::kTruncated);
  uint16_t t = *type;
  if (!SkipVlanTags(c.r, &t)) return Bad(c.stats, Stage::kLink, Reason::kTruncated);
  switch (NetFromEtherType(t)) {  // <= 1500 is an 802.3 length (LLC): not IP
    case Net::kIpv4:
      c.next = Layer::kIpv4;
      return ParseResult::kOk;
    case Net::kIpv6:
      c.next = Layer::kIpv6;
      return ParseResult::kOk;
    default:
      return ParseResult::kNotThisProtocol;
  }
}

ParseResult DecodeIpByVersion(Ctx& c) {
  if (c.r.empty()) return Bad(c.stats, Stage::kIp, Reason::kTruncated);
  const uint8_t version = c.r.rest()[0] >> 4;
  if (version == 4) {
    c.next = Layer::kIpv4;
  } else if (version == 6) {
    c.next = Layer::kIpv6;
  } else {
    return Bad(c.stats, Stage::kIp, Reason::kBadHeader);
  }
  return ParseResult::kOk;
}

constexpr uint8_t kIpProtoIpip = 4;
constexpr uint8_t kIpProtoUdp = 17;
constexpr uint8_t kIpProtoIpv6 = 41;
constexpr uint8_t kIpProtoGre = 47;

bool HasPort(const std::vector<uint16_t>& ports, uint16_t port) {
  for (uint16_t p : ports) {
    if (p == port) return true;
  }
  return false;
}

// The UDP destination port of a datagram starting at `l4`, when it carries a tunnel.
bool IsTunnelPort(const Ctx& c, std::span<const uint8_t> l4) {
  auto dport = PeekU16Be(l4, 2);
  return dport && (HasPort(c.decap->vxlan_ports, *dport) || HasPort(c.decap->geneve_ports, *dport));
}

// After an IP header: what its protocol number leads to. `fragment`: the packet is a
// fragment (`first`: the one at offset 0), which is not reassembled.
ParseResult FromIpProtocol(Ctx& c, uint8_t proto, bool fragment, bool first) {
  switch (proto) {
    case kIpProtoTcp:
    case kIpProtoHopByHop:  // extension headers after an IPv6 fragment header
    case kIpProtoRouting:
    case kIpProtoDstOpts:
    case kIpProtoAh:
      if (fragment) return Bad(c.stats, Stage::kIp, Reason::kIpFragment);
      if (proto != kIpProtoTcp) return ParseResult::kNotThisProtocol;
      c.next = Layer::kTcp;
      return ParseResult::kOk;
    case kIpProtoIpip:
    case kIpProtoIpv6:
      if (fragment) return Bad(c.stats, Stage::kTunnel, Reason::kIpFragment);
      return EnterTunnel(c, TunnelType::kIpip, false, 0,
                         proto == kIpProtoIpip ? Layer::kIpv4 : Layer::kIpv6);
    case kIpProtoGre:
      if (fragment) return Bad(c.stats, Stage::kTunnel, Reason::kIpFragment);
      c.next = Layer::kGre;
      return ParseResult::kOk;
    case kIpProtoUdp:
      if (fragment) {
        // Only the first fragment shows the port; the others cannot be told from other UDP.
        if (first && IsTunnelPort(c, c.r.rest())) {
          return Bad(c.stats, Stage::kTunnel, Reason::kIpFragment);
        }
        return ParseResult::kNotThisProtocol;
      }
      c.next = Layer::kUdp;
      return ParseResult::kOk;
    default:
      return ParseResult::kNotThisProtocol;
  }
}

ParseResult DecodeIpv4(Ctx& c) {
  ByteReader& r = c.r;
  const std::span<const uint8_t> start = r.rest();
  auto ver_ihl = r.U8();
  if (!ver_ihl || start.size() < kIpv4MinHeaderLen) {
    return Bad(c.stats, Stage::kIp, Reason::kTruncated);
  }
  if ((*ver_ihl >> 4) != 4) return Bad(c.stats, Stage::kIp, Reason::kBadHeader);
  const size_t ihl = size_t{*ver_ihl & 0x0fu} * 4;
  if (ihl < kIpv4MinHeaderLen) return Bad(c.stats, Stage::kIp, Reason::kBadHeader);
  if (start.size() < ihl) return Bad(c.stats, Stage::kIp, Reason::kTruncated);
  r.Skip(1);                            // DSCP/ECN
  const size_t total_len = *r.U16Be();  // the 20 fixed bytes are known to be there
  r.Skip(2);                            // identification
  const uint16_t frag = *r.U16Be();     // flags(3) fragment offset(13)
  r.Skip(1);                            // TTL
  const uint8_t proto = *r.U8();
  r.Skip(2);  // header checksum (not verified: offload)
  const auto src = *r.Bytes(4);
  const auto dst = *r.Bytes(4);
  r.Skip(ihl - kIpv4MinHeaderLen);  // options

  size_t wire_len = total_len;
  if (total_len == 0) {
    wire_len = start.size();  // TSO: the length was left for the NIC to fill in
  } else if (total_len < ihl) {
    return Bad(c.stats, Stage::kIp, Reason::kBadLength);
  }
  StoreAddress(src, false, &c.ip_src);
  StoreAddress(dst, false, &c.ip_dst);
  c.l4_wire_len = wire_len - ihl;
  const size_t captured = start.size() - ihl;  // Ethernet padding trimmed just below
  r = *r.Sub(captured < c.l4_wire_len ? captured : c.l4_wire_len);
  return FromIpProtocol(c, proto, (frag & 0x3fffu) != 0, (frag & 0x1fffu) == 0);  // MF|offset
}

ParseResult DecodeIpv6(Ctx& c) {
  ByteReader r = c.r;
  const std::span<const uint8_t> start = r.rest();
  if (start.size() < kIpv6HeaderLen) return Bad(c.stats, Stage::kIp, Reason::kTruncated);
  if ((start[0] >> 4) != 6) return Bad(c.stats, Stage::kIp, Reason::kBadHeader);
  r.Skip(4);  // version, traffic class, flow label
  const size_t payload_len = *r.U16Be();
  uint8_t next = *r.U8();
  r.Skip(1);  // hop limit
  const auto src = *r.Bytes(16);
  const auto dst = *r.Bytes(16);

  // Bound everything below by the payload length (trims padding), keeping the wire length.
  size_t wire_len = payload_len == 0 ? r.remaining() : payload_len;  // 0: TSO or jumbogram
  ByteReader p = *r.Sub(r.remaining() < wire_len ? r.remaining() : wire_len);

  for (;;) {
    switch (next) {
      case kIpProtoHopByHop:
      case kIpProtoRouting:
      case kIpProtoDstOpts:
      case kIpProtoMobility:
      case kIpProtoAh: {
        auto nh = p.U8();
        auto len = p.U8();
        if (!nh || !len) return Bad(c.stats, Stage::kIp, Reason::kTruncated);
        const size_t hdr_len = next == kIpProtoAh ? (size_t{*len} + 2) * 4 : (size_t{*len} + 1) * 8;
        if (hdr_len > wire_len) return Bad(c.stats, Stage::kIp, Reason::kBadLength);
        if (!p.Skip(hdr_len - 2)) return Bad(c.stats, Stage::kIp, Reason::kTruncated);
        wire_len -= hdr_len;
        next = *nh;
        break;
      }
      case kIpProtoFragment: {
        auto nh = p.U8();
        auto reserved = p.U8();
        auto off_flags = p.U16Be();
        if (!nh || !reserved || !off_flags || !p.Skip(4)) {
          return Bad(c.stats, Stage::kIp, Reason::kTruncated);
        }
        if (wire_len < 8) return Bad(c.stats, Stage::kIp, Reason::kBadLength);
        wire_len -= 8;
        if ((*off_flags & 0xfff9u) != 0) {  // offset != 0 or M set (an atomic fragment is not)
          c.r = p;
          return FromIpProtocol(c, *nh, true, (*off_flags & 0xfff8u) == 0);
        }
        next = *nh;
        break;
      }
      case kIpProtoNoNext:
        return ParseResult::kNotThisProtocol;
      default:
        StoreAddress(src, true, &c.ip_src);
        StoreAddress(dst, true, &c.ip_dst);
        c.r = p;
        c.l4_wire_len = wire_len;
        return FromIpProtocol(c, next, false, true);  // TCP, UDP, GRE, IP in IP, ...
    }
  }
}

constexpr size_t kUdpHeaderLen = 8;

ParseResult DecodeUdp(Ctx& c) {
  const std::span<const uint8_t> hdr = c.r.rest();
  if (!IsTunnelPort(c, hdr)) return ParseResult::kNotThisProtocol;  // DNS, QUIC, ...
  const uint16_t dport = *PeekU16Be(hdr, 2);
  auto len = PeekU16Be(hdr, 4);
  if (!len || !c.r.Skip(kUdpHeaderLen)) return Bad(c.stats, Stage::kTunnel, Reason::kTruncated);
  if (*len < kUdpHeaderLen || *len > c.l4_wire_len) {
    return Bad(c.stats, Stage::kTunnel, Reason::kBadLength);
  }
  const size_t body = *len - kUdpHeaderLen;
  c.r = *c.r.Sub(c.r.remaining() < body ? c.r.remaining() : body);
  c.next = HasPort(c.decap->vxlan_ports, dport) ? Layer::kVxlan : Layer::kGeneve;
  return ParseResult::kOk;
}

// RFC 7348: flags(8, I = 0x08) reserved(24) VNI(24) reserved(8), then Ethernet.
ParseResult DecodeVxlan(Ctx& c) {
  auto flags = c.r.U8();
  auto vni = (c.r.Skip(3) ? c.r.U24Be() : std::nullopt);
  if (!flags || !vni || !c.r.Skip(1)) return Bad(c.stats, Stage::kTunnel, Reason::kTruncated);
  if ((*flags & 0x08u) == 0) return Bad(c.stats, Stage::kTunnel, Reason::kBadHeader);
  return EnterTunnel(c, TunnelType::kVxlan, true, *vni, Layer::kEthernet);
}

constexpr uint16_t kEtherTypeTeb = 0x6558;  // transparent Ethernet bridging (GRETAP, GENEVE)
constexpr uint16_t kEtherTypeErspan2 = 0x88be;
constexpr uint16_t kEtherTypeErspan3 = 0x22eb;

// The layer a tunnel's protocol type (an ethertype) leads to, if we decode it.
std::optional<Layer> FromEtherType(uint16_t type) {
  if (type == kEtherTypeTeb) return Layer::kEthernet;
  if (type == kEtherTypeIpv4) return Layer::kIpv4;
  if (type == kEtherTypeIpv6) return Layer::kIpv6;
  return std::nullopt;
}

// RFC 8926: ver(2) opt len(6, in 4-byte words) O C rsvd(6) protocol(16) VNI(24) rsvd(8),
// then the options.
ParseResult DecodeGeneve(Ctx& c) {
  auto b0 = c.r.U8();
  auto b1 = c.r.U8();
  auto proto = c.r.U16Be();
  auto vni = c.r.U24Be();
  if (!b0 || !b1 || !proto || !vni || !c.r.Skip(1)) {
    return Bad(c.stats, Stage::kTunnel, Reason::kTruncated);
  }
  if ((*b0 >> 6) != 0) return Bad(c.stats, Stage::kTunnel, Reason::kBadHeader);
  if (!c.r.Skip(size_t{*b0 & 0x3fu} * 4)) return Bad(c.stats, Stage::kTunnel, Reason::kTruncated);
  const auto next = FromEtherType(*proto);
  if (!next) return Bad(c.stats, Stage::kTunnel, Reason::kUnsupportedProtocol);
  return EnterTunnel(c, TunnelType::kGeneve, true, *vni, *next);
}

// RFC 2784/2890: C R K S s recur(3) flags(5) version(3), protocol(16), [checksum(16)
// offset(16)] [key(32)] [sequence(32)].
ParseResult DecodeGre(Ctx& c) {
  auto flags = c.r.U16Be();
  auto proto = c.r.U16Be();
  if (!flags || !proto) return Bad(c.stats, Stage::kTunnel, Reason::kTruncated);
  if ((*flags & 0x7u) != 0) return Bad(c.stats, Stage::kTunnel, Reason::kBadHeader);  // PPTP: 1
  if ((*flags & 0x4000u) != 0) {  // RFC 1701 source routing: obsolete
    return Bad(c.stats, Stage::kTunnel, Reason::kUnsupportedProtocol);
  }
  const bool has_key = (*flags & 0x2000u) != 0;
  const bool has_seq = (*flags & 0x1000u) != 0;
  uint32_t key = 0;
  if ((*flags & 0x8000u) != 0 && !c.r.Skip(4)) {
    return Bad(c.stats, Stage::kTunnel, Reason::kTruncated);
  }
  if (has_key) {
    auto k = c.r.U32Be();
    if (!k) return Bad(c.stats, Stage::kTunnel, Reason::kTruncated);
    key = *k;
  }
  if (has_seq && !c.r.Skip(4)) return Bad(c.stats, Stage::kTunnel, Reason::kTruncated);
  if (*proto == kEtherTypeErspan2) {  // type I has no sequence number, type II has one
    c.next = has_seq ? Layer::kErspan2 : Layer::kErspan1;
    return ParseResult::kOk;
  }
  if (*proto == kEtherTypeErspan3) {
    c.next = Layer::kErspan3;
    return ParseResult::kOk;
  }
  const auto next = FromEtherType(*proto);
  if (!next) return Bad(c.stats, Stage::kTunnel, Reason::kUnsupportedProtocol);
  return EnterTunnel(c, TunnelType::kGre, has_key, key, *next);
}

ParseResult DecodeErspan1(Ctx& c) {
  return EnterTunnel(c, TunnelType::kErspan, false, 0, Layer::kEthernet);
}

// ERSPAN II: ver(4) = 1, VLAN(12), COS(3) En(2) T(1) session ID(10), reserved(12) index(20).
ParseResult DecodeErspan2(Ctx& c) {
  auto w0 = c.r.U16Be();
  auto w1 = c.r.U16Be();
  if (!w0 || !w1 || !c.r.Skip(4)) return Bad(c.stats, Stage::kTunnel, Reason::kTruncated);
  if ((*w0 >> 12) != 1) return Bad(c.stats, Stage::kTunnel, Reason::kBadHeader);
  return EnterTunnel(c, TunnelType::kErspan, true, *w1 & 0x3ffu, Layer::kEthernet);
}

// ERSPAN III: ver(4) = 2, VLAN(12), COS(3) BSO(2) T(1) session ID(10), timestamp(32),
// SGT(16), P(1) FT(5) HW ID(6) D(1) Gra(2) O(1), [platform-specific subheader(64) if O].
// Frame type 0 is Ethernet, 2 is IP.
ParseResult DecodeErspan3(Ctx& c) {
  auto w0 = c.r.U16Be();
  auto w1 = c.r.U16Be();
  const bool fixed = c.r.Skip(6);  // timestamp, SGT
  auto w5 = c.r.U16Be();
  if (!w0 || !w1 || !fixed || !w5) return Bad(c.stats, Stage::kTunnel, Reason::kTruncated);
  if ((*w0 >> 12) != 2) return Bad(c.stats, Stage::kTunnel, Reason::kBadHeader);
  if ((*w5 & 1u) != 0 && !c.r.Skip(8)) return Bad(c.stats, Stage::kTunnel, Reason::kTruncated);
  const unsigned frame_type = (*w5 >> 10) & 0x1fu;
  if (frame_type != 0 && frame_type != 2) {
    return Bad(c.stats, Stage::kTunnel, Reason::kUnsupportedProtocol);
  }
  return EnterTunnel(c, TunnelType::kErspan, true, *w1 & 0x3ffu,
                     frame_type == 0 ? Layer::kEthernet : Layer::kIpByVersion);
}

ParseResult DecodeTcpHeader(ByteReader r, size_t wire_len, TcpSegment* out, ParseStats* stats) {
  const size_t captured = r.remaining();
  if (captured < kTcpMinHeaderLen) {
    // Past the IP length there is nothing more to come: the IP header lied.
    return Bad(stats, Stage::kTcp,
               wire_len < kTcpMinHeaderLen ? Reason::kBadLength : Reason::kTruncated);
  }
  out->sport = *r.U16Be();
  out->dport = *r.U16Be();
  out->seq = *r.U32Be();
  out->ack = *r.U32Be();
  const uint8_t off = *r.U8();
  out->flags = *r.U8();
  r.Skip(6);  // window, checksum, urgent pointer
  const size_t header_len = static_cast<size_t>(off >> 4) * 4;
  if (header_len < kTcpMinHeaderLen) return Bad(stats, Stage::kTcp, Reason::kBadHeader);
  if (header_len > wire_len) return Bad(stats, Stage::kTcp, Reason::kBadLength);
  if (!r.Skip(header_len - kTcpMinHeaderLen)) return Bad(stats, Stage::kTcp, Reason::kTruncated);
  out->payload = r.rest();
  out->payload_wire_len = static_cast<uint32_t>(wire_len - header_len);  // <= 65535 (or frame)
  return ParseResult::kOk;
}

ParseResult DecodeTcp(Ctx& c) {
  c.out->src = c.ip_src;
  c.out->dst = c.ip_dst;
  return DecodeTcpHeader(c.r, c.l4_wire_len, c.out, c.stats);
}

using LayerDecoder = ParseResult (*)(Ctx&);
constexpr std::array<LayerDecoder, static_cast<size_t>(Layer::kCount)> kDecoders = {
    DecodeEthernet, DecodeIpByVersion, DecodeIpv4,    DecodeIpv6,    DecodeUdp,     DecodeVxlan,
    DecodeGeneve,   DecodeGre,         DecodeErspan1, DecodeErspan2, DecodeErspan3, DecodeTcp,
};

}  // namespace

ParseResult DecodeTcpSegment(uint32_t linktype, std::span<const uint8_t> frame,
                             const DecapConfig& decap, TcpSegment* out, ParseStats* stats) {
  Ctx c;
  c.r = ByteReader(frame);
  c.decap = &decap;
  c.out = out;
  c.stats = stats;
  out->tunnel = TunnelInfo{};
  Net net = Net::kOther;
  if (linktype == kLinkEthernet) {
    c.next = Layer::kEthernet;
  } else {
    if (ParseResult res = DecodeLink(linktype, c.r, &net, stats); res != ParseResult::kOk) {
      return res;
    }
    switch (net) {
      case Net::kIpv4:
        c.next = Layer::kIpv4;
        break;
      case Net::kIpv6:
        c.next = Layer::kIpv6;
        break;
      case Net::kByVersion:
        c.next = Layer::kIpByVersion;
        break;
      case Net::kOther:
        return ParseResult::kNotThisProtocol;
    }
  }
  // Every step consumes a header or strips a tunnel (capped), so this ends; the bound is a
  // second guard.
  for (int step = 0; step < 8 * (kMaxTunnelDepth + 1); ++step) {
    const Layer layer = c.next;
    if (ParseResult res = kDecoders[static_cast<size_t>(layer)](c); res != ParseResult::kOk) {
      return res;
    }
    if (layer == Layer::kTcp) return ParseResult::kOk;
  }
  return Bad(stats, Stage::kTunnel, Reason::kTooDeep);
}

ParseResult DecodeTcpSegment(uint32_t linktype, std::span<const uint8_t> frame, TcpSegment* out,
                             ParseStats* stats) {
  static const DecapConfig kDefault;
  return DecodeTcpSegment(linktype, frame, kDefault, out, stats);
}

}  // namespace pgtlsmon::parser
