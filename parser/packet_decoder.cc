// parser/packet_decoder.cc: link layer -> IPv4/IPv6 -> TCP, on one captured frame.
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
//  - The protocol is checked before the fragment bits, so only fragments of TCP are counted
//    (a fragmented UDP datagram is kNotThisProtocol like any UDP datagram).
#include "parser/packet_decoder.h"

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

// Strips the link header. On kOk, *net says what follows and `r` is positioned on it.
ParseResult DecodeLink(uint32_t linktype, ByteReader& r, Net* net, ParseStats* stats) {
  switch (linktype) {
    case kLinkEthernet: {
      if (!r.Skip(12)) return Bad(stats, Stage::kLink, Reason::kTruncated);  // dst, src MAC
      auto type = r.U16Be();
      if (!type) return Bad(stats, Stage::kLink, Reason::kTruncated);
      uint16_t t = *type;
      if (!SkipVlanTags(r, &t)) return Bad(stats, Stage::kLink, Reason::kTruncated);
      *net = NetFromEtherType(t);  // <= 1500 is an 802.3 length (LLC): not IP
      return ParseResult::kOk;
    }
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

// What the IP layer hands to TCP.
struct IpResult {
  ByteReader tcp;           // the captured part of the TCP segment, bounded by the IP length
  size_t tcp_wire_len = 0;  // the TCP segment's length per the IP header
};

ParseResult DecodeIpv4(ByteReader r, TcpSegment* out, IpResult* ip, ParseStats* stats) {
  const std::span<const uint8_t> start = r.rest();
  auto ver_ihl = r.U8();
  if (!ver_ihl || start.size() < kIpv4MinHeaderLen) {
    return Bad(stats, Stage::kIp, Reason::kTruncated);
  }
  if ((*ver_ihl >> 4) != 4) return Bad(stats, Stage::kIp, Reason::kBadHeader);
  const size_t ihl = size_t{*ver_ihl & 0x0fu} * 4;
  if (ihl < kIpv4MinHeaderLen) return Bad(stats, Stage::kIp, Reason::kBadHeader);
  if (start.size() < ihl) return Bad(stats, Stage::kIp, Reason::kTruncated);
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
    return Bad(stats, Stage::kIp, Reason::kBadLength);
  }
  if (proto != kIpProtoTcp) return ParseResult::kNotThisProtocol;
  if ((frag & 0x3fffu) != 0) return Bad(stats, Stage::kIp, Reason::kIpFragment);  // MF|offset

  StoreAddress(src, false, &out->src);
  StoreAddress(dst, false, &out->dst);
  ip->tcp_wire_len = wire_len - ihl;
  const size_t captured = start.size() - ihl;  // Ethernet padding trimmed just below
  ip->tcp = *r.Sub(captured < ip->tcp_wire_len ? captured : ip->tcp_wire_len);
  return ParseResult::kOk;
}

ParseResult DecodeIpv6(ByteReader r, TcpSegment* out, IpResult* ip, ParseStats* stats) {
  const std::span<const uint8_t> start = r.rest();
  if (start.size() < kIpv6HeaderLen) return Bad(stats, Stage::kIp, Reason::kTruncated);
  if ((start[0] >> 4) != 6) return Bad(stats, Stage::kIp, Reason::kBadHeader);
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
      case kIpProtoTcp: {
        StoreAddress(src, true, &out->src);
        StoreAddress(dst, true, &out->dst);
        ip->tcp = p;
        ip->tcp_wire_len = wire_len;
        return ParseResult::kOk;
      }
      case kIpProtoHopByHop:
      case kIpProtoRouting:
      case kIpProtoDstOpts:
      case kIpProtoMobility:
      case kIpProtoAh: {
        auto nh = p.U8();
        auto len = p.U8();
        if (!nh || !len) return Bad(stats, Stage::kIp, Reason::kTruncated);
        const size_t hdr_len = next == kIpProtoAh ? (size_t{*len} + 2) * 4 : (size_t{*len} + 1) * 8;
        if (hdr_len > wire_len) return Bad(stats, Stage::kIp, Reason::kBadLength);
        if (!p.Skip(hdr_len - 2)) return Bad(stats, Stage::kIp, Reason::kTruncated);
        wire_len -= hdr_len;
        next = *nh;
        break;
      }
      case kIpProtoFragment: {
        auto nh = p.U8();
        auto reserved = p.U8();
        auto off_flags = p.U16Be();
        if (!nh || !reserved || !off_flags || !p.Skip(4)) {
          return Bad(stats, Stage::kIp, Reason::kTruncated);
        }
        if (wire_len < 8) return Bad(stats, Stage::kIp, Reason::kBadLength);
        wire_len -= 8;
        if ((*off_flags & 0xfff9u) != 0) {  // offset != 0 or M set (an atomic fragment is not)
          const uint8_t n = *nh;
          const bool tcp_ish = n == kIpProtoTcp || n == kIpProtoHopByHop || n == kIpProtoRouting ||
                               n == kIpProtoDstOpts || n == kIpProtoAh;
          if (!tcp_ish) return ParseResult::kNotThisProtocol;
          return Bad(stats, Stage::kIp, Reason::kIpFragment);
        }
        next = *nh;
        break;
      }
      case kIpProtoNoNext:
      default:
        return ParseResult::kNotThisProtocol;  // UDP, ICMPv6, ESP, no next header, ...
    }
  }
}

ParseResult DecodeTcp(ByteReader r, size_t wire_len, TcpSegment* out, ParseStats* stats) {
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

}  // namespace

ParseResult DecodeTcpSegment(uint32_t linktype, std::span<const uint8_t> frame, TcpSegment* out,
                             ParseStats* stats) {
  ByteReader r(frame);
  Net net = Net::kOther;
  if (ParseResult res = DecodeLink(linktype, r, &net, stats); res != ParseResult::kOk) return res;
  if (net == Net::kByVersion) {
    if (r.empty()) return Bad(stats, Stage::kIp, Reason::kTruncated);
    const uint8_t version = r.rest()[0] >> 4;
    if (version == 4) {
      net = Net::kIpv4;
    } else if (version == 6) {
      net = Net::kIpv6;
    } else {
      return Bad(stats, Stage::kIp, Reason::kBadHeader);
    }
  }
  IpResult ip;
  ParseResult res = ParseResult::kNotThisProtocol;
  if (net == Net::kIpv4) {
    res = DecodeIpv4(r, out, &ip, stats);
  } else if (net == Net::kIpv6) {
    res = DecodeIpv6(r, out, &ip, stats);
  }
  if (res != ParseResult::kOk) return res;
  return DecodeTcp(ip.tcp, ip.tcp_wire_len, out, stats);
}

}  // namespace pgtlsmon::parser
