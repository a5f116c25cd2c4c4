// tests/testing/tunnel_frames.h: wraps frames from tests/testing/packet_builder.h in the
// encapsulations the eBPF programs strip (VXLAN, GENEVE, GRE/GRETAP, ERSPAN I/II/III, IP in IP),
// laid out as parser/packet_decoder.cc reads them: for the decoder's unit tests and for
// BPF_PROG_TEST_RUN. The outer frame is Ethernet / underlay IP
// (192.0.2.1 -> 192.0.2.2 or 2001:db8:ff00::1 -> ::2) / tunnel / inner.
// Lengths are filled in; checksums are left 0 (nothing here verifies them).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pgtlsmon::testing::tunnel {

using Bytes = std::vector<uint8_t>;

class Builder {
 public:
  Builder& U8(uint32_t v) {
    b.push_back(static_cast<uint8_t>(v));
    return *this;
  }
  Builder& U16(uint32_t v) { return U8(v >> 8).U8(v); }
  Builder& U32(uint32_t v) { return U16(v >> 16).U16(v); }
  Builder& Append(const Bytes& x) {
    b.insert(b.end(), x.begin(), x.end());
    return *this;
  }
  Bytes b;
};

inline constexpr uint32_t kGreC = 0x8000, kGreK = 0x2000, kGreS = 0x1000;
inline constexpr uint16_t kIpv4FlagDf = 0x4000, kIpv4FlagMf = 0x2000;

// The IP packet inside an Ethernet frame of packet_builder.h (no VLAN tags).
inline Bytes StripEthernet(const Bytes& eth) { return Bytes(eth.begin() + 14, eth.end()); }

// Ethernet / underlay IPv4 or IPv6 / `payload` of IP protocol `proto`. `frag`: the IPv4 flags and
// fragment offset word.
inline Bytes Outer(bool v6, uint8_t proto, const Bytes& payload, uint16_t frag = kIpv4FlagDf) {
  Builder f;
  f.U32(0x02000000).U16(0x0001).U32(0x02000000).U16(0x0002);  // dst, src MAC
  f.U16(v6 ? 0x86dd : 0x0800);
  if (v6) {
    f.U32(0x60000000).U16(static_cast<uint32_t>(payload.size())).U8(proto).U8(64);
    f.U32(0x20010db8).U32(0xff000000).U32(0).U32(1);
    f.U32(0x20010db8).U32(0xff000000).U32(0).U32(2);
  } else {
    f.U8(0x45).U8(0).U16(static_cast<uint32_t>(20 + payload.size())).U16(0x4321).U16(frag);
    f.U8(64).U8(proto).U16(0).U32(0xc0000201).U32(0xc0000202);
  }
  return f.Append(payload).b;
}

inline Bytes Udp(uint16_t dport, const Bytes& body) {
  return Builder{}
      .U16(54321)
      .U16(dport)
      .U16(static_cast<uint32_t>(8 + body.size()))
      .U16(0)
      .Append(body)
      .b;
}

// VXLAN (flags: the I bit 0x08 makes it valid) carrying an Ethernet frame.
inline Bytes Vxlan(uint32_t vni, const Bytes& eth, uint8_t flags = 0x08) {
  return Builder{}.U8(flags).U8(0).U16(0).U32(vni << 8).Append(eth).b;
}

// GENEVE with `opt_words` 4-byte words of options (one TLV option header + data).
inline Bytes Geneve(uint32_t vni, uint16_t proto, const Bytes& payload, uint32_t opt_words = 3,
                    uint32_t version = 0) {
  Builder f;
  f.U8((version << 6) | (opt_words & 0x3fu)).U8(0).U16(proto).U32(vni << 8);
  if (opt_words > 0) f.U16(0x0102).U8(0x80).U8(opt_words - 1);  // class, type, length
  for (uint32_t i = 1; i < opt_words; ++i) f.U32(0xdeadbeef);
  return f.Append(payload).b;
}

inline Bytes Gre(uint32_t flags, uint16_t proto, uint32_t key, const Bytes& payload) {
  Builder f;
  f.U16(flags).U16(proto);
  if (flags & kGreC) f.U16(0xabcd).U16(0);  // checksum, offset
  if (flags & kGreK) f.U32(key);
  if (flags & kGreS) f.U32(77);  // sequence number
  return f.Append(payload).b;
}

// ERSPAN type I: GRE 0x88be without a sequence number, the mirrored frame right after.
inline Bytes Erspan1(const Bytes& eth) { return Gre(0, 0x88be, 0, eth); }

inline Bytes Erspan2(uint16_t session, const Bytes& eth, uint32_t version = 1) {
  Builder f;
  f.U16((version << 12) | 100).U16(session & 0x3ffu).U32(7);
  return Gre(kGreS, 0x88be, 0, f.Append(eth).b);
}

// ERSPAN type III; `subheader`: the optional 8-byte platform-specific subheader (P bit);
// frame_type 0: Ethernet, 2: IP.
inline Bytes Erspan3(uint16_t session, bool subheader, const Bytes& payload,
                     uint32_t frame_type = 0) {
  Builder f;
  f.U16(0x2000 | 100).U16(session & 0x3ffu).U32(0x11223344).U16(0);
  f.U16((frame_type << 10) | (subheader ? 1u : 0u));
  if (subheader) f.U32(0x5).U32(0x6);
  return Gre(kGreS, 0x22eb, 0, f.Append(payload).b);
}

// An Ethernet frame around an IP packet, with 802.1ad + 802.1Q tags when `qinq`.
inline Bytes Ethernet(const Bytes& ip, bool v6, bool qinq = false) {
  Builder f;
  f.U32(0x02000000).U16(0x0003).U32(0x02000000).U16(0x0004);
  if (qinq) f.U16(0x88a8).U16(10).U16(0x8100).U16(20);
  f.U16(v6 ? 0x86dd : 0x0800);
  return f.Append(ip).b;
}

}  // namespace pgtlsmon::testing::tunnel
