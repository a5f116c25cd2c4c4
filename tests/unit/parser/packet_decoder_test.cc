// Tests for parser/packet_decoder.h: frames are written one field per line, then every
// prefix of every frame is decoded (the truncation sweep).
#include "parser/packet_decoder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "tests/testing/tunnel_frames.h"

namespace pgtlsmon::parser {
namespace {

using ::testing::ElementsAreArray;

// Link types (the values of capture/packet_source.h, which the parser does not include).
constexpr uint32_t kNull = 0;
constexpr uint32_t kEthernet = 1;
constexpr uint32_t kDltRaw12 = 12;
constexpr uint32_t kDltRaw14 = 14;
constexpr uint32_t kRaw = 101;
constexpr uint32_t kLoop = 108;
constexpr uint32_t kSll = 113;
constexpr uint32_t kIpv4 = 228;
constexpr uint32_t kIpv6 = 229;
constexpr uint32_t kSll2 = 276;

// A frame under construction: append fields in wire order.
struct Frame {
  std::vector<uint8_t> b;
  Frame& U8(uint32_t v) {
    b.push_back(static_cast<uint8_t>(v));
    return *this;
  }
  Frame& U16(uint32_t v) { return U8(v >> 8).U8(v); }
  Frame& U32(uint32_t v) { return U16(v >> 16).U16(v); }
  Frame& U32Le(uint32_t v) { return U8(v).U8(v >> 8).U8(v >> 16).U8(v >> 24); }
  Frame& Bytes(const std::vector<uint8_t>& v) {
    b.insert(b.end(), v.begin(), v.end());
    return *this;
  }
  Frame& Zeros(size_t n) {
    b.insert(b.end(), n, 0);
    return *this;
  }
};

const std::vector<uint8_t> kPayload = {'h', 'e', 'l', 'l', 'o'};
const std::vector<uint8_t> kSrc4 = {10, 0, 0, 1};
const std::vector<uint8_t> kDst4 = {10, 0, 0, 2};
const std::vector<uint8_t> kSrc6 = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
const std::vector<uint8_t> kDst6 = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};

// Ethernet II header up to and including the ethertype.
void Ethernet(Frame& f, uint16_t ethertype) {
  f.U16(0x0200).U32(0x00000001);  // destination MAC 02:00:00:00:00:01
  f.U16(0x0200).U32(0x00000002);  // source MAC 02:00:00:00:00:02
  f.U16(ethertype);               // ethertype
}

// An IPv4 header without options; `l4_len` is the length of what follows it.
void Ipv4(Frame& f, size_t l4_len, uint8_t proto = 6, uint16_t frag = 0x4000 /* DF */) {
  f.U8(0x45);                                 // version 4, IHL 5 (20 bytes)
  f.U8(0x00);                                 // DSCP/ECN
  f.U16(static_cast<uint32_t>(20 + l4_len));  // total length
  f.U16(0x1234);                              // identification
  f.U16(frag);                                // flags (DF/MF) + fragment offset
  f.U8(64);                                   // TTL
  f.U8(proto);                                // protocol
  f.U16(0);                                   // header checksum (not checked)
  f.Bytes(kSrc4);                             // source 10.0.0.1
  f.Bytes(kDst4);                             // destination 10.0.0.2
}

// An IPv6 fixed header; `payload_len` counts extension headers and the upper layer.
void Ipv6(Frame& f, size_t payload_len, uint8_t next) {
  f.U32(0x60000000);                          // version 6, traffic class, flow label
  f.U16(static_cast<uint32_t>(payload_len));  // payload length
  f.U8(next);                                 // next header
  f.U8(64);                                   // hop limit
  f.Bytes(kSrc6);                             // source 2001:db8::1
  f.Bytes(kDst6);                             // destination 2001:db8::2
}

constexpr size_t kTcpLen = 20;  // header without options

// A TCP header without options, then `payload`.
void Tcp(Frame& f, const std::vector<uint8_t>& payload, uint8_t flags = kTcpPsh | kTcpAck) {
  f.U16(40000);       // source port
  f.U16(5432);        // destination port
  f.U32(0x01020304);  // sequence number
  f.U32(0x0a0b0c0d);  // acknowledgment number
  f.U8(0x50);         // data offset 5 (20 bytes), reserved
  f.U8(flags);        // flags
  f.U16(65535);       // window
  f.U16(0);           // checksum (not checked)
  f.U16(0);           // urgent pointer
  f.Bytes(payload);
}

// The reference frame: Ethernet / IPv4 / TCP "hello", written out in full.
std::vector<uint8_t> EthIpv4Frame() {
  Frame f;
  f.U16(0x0200).U32(0x00000001);  // destination MAC
  f.U16(0x0200).U32(0x00000002);  // source MAC
  f.U16(0x0800);                  // ethertype IPv4
  f.U8(0x45);                     // IPv4: version 4, IHL 5
  f.U8(0x00);                     // DSCP/ECN
  f.U16(20 + 20 + 5);             // total length: IP + TCP + "hello"
  f.U16(0x1234);                  // identification
  f.U16(0x4000);                  // DF, offset 0
  f.U8(64);                       // TTL
  f.U8(6);                        // protocol TCP
  f.U16(0xbeef);                  // header checksum
  f.U8(10).U8(0).U8(0).U8(1);     // source 10.0.0.1
  f.U8(10).U8(0).U8(0).U8(2);     // destination 10.0.0.2
  f.U16(40000);                   // TCP source port
  f.U16(5432);                    // destination port
  f.U32(0x01020304);              // sequence number
  f.U32(0x0a0b0c0d);              // acknowledgment number
  f.U8(0x50);                     // data offset 5
  f.U8(kTcpPsh | kTcpAck);        // flags
  f.U16(65535);                   // window
  f.U16(0);                       // checksum
  f.U16(0);                       // urgent pointer
  f.Bytes(kPayload);              // payload "hello"
  return f.b;
}

std::vector<uint8_t> EthIpv6Frame() {
  Frame f;
  Ethernet(f, 0x86dd);
  Ipv6(f, kTcpLen + kPayload.size(), 6);
  Tcp(f, kPayload);
  return f.b;
}

// Decodes `bytes` from an exactly-sized heap copy, so that ASan catches any read past it.
ParseResult Decode(uint32_t linktype, const std::vector<uint8_t>& bytes, TcpSegment* seg,
                   ParseStats* stats, std::vector<uint8_t>* keep) {
  *keep = bytes;
  keep->shrink_to_fit();
  return DecodeTcpSegment(linktype, std::span<const uint8_t>(keep->data(), keep->size()), seg,
                          stats);
}

struct Decoded {
  ParseResult result;
  TcpSegment seg;
  ParseStats stats;
  std::vector<uint8_t> storage;
};

Decoded DecodeFrame(uint32_t linktype, const std::vector<uint8_t>& bytes) {
  Decoded d{};
  d.result = Decode(linktype, bytes, &d.seg, &d.stats, &d.storage);
  return d;
}

std::vector<uint8_t> PayloadOf(const TcpSegment& s) { return {s.payload.begin(), s.payload.end()}; }

void ExpectV4Hello(const Decoded& d) {
  ASSERT_EQ(d.result, ParseResult::kOk);
  EXPECT_FALSE(d.seg.src.is_v6);
  EXPECT_EQ(FormatIp(d.seg.src), "10.0.0.1");
  EXPECT_EQ(FormatIp(d.seg.dst), "10.0.0.2");
  EXPECT_EQ(d.seg.sport, 40000);
  EXPECT_EQ(d.seg.dport, 5432);
  EXPECT_EQ(d.seg.seq, 0x01020304u);
  EXPECT_EQ(d.seg.ack, 0x0a0b0c0du);
  EXPECT_EQ(d.seg.flags, kTcpPsh | kTcpAck);
  EXPECT_THAT(PayloadOf(d.seg), ElementsAreArray(kPayload));
  EXPECT_EQ(d.seg.payload_wire_len, kPayload.size());
  EXPECT_EQ(d.stats.Total(), 0u);
}

void ExpectV6Hello(const Decoded& d) {
  ASSERT_EQ(d.result, ParseResult::kOk);
  EXPECT_TRUE(d.seg.src.is_v6);
  EXPECT_EQ(FormatIp(d.seg.src), "2001:db8::1");
  EXPECT_EQ(FormatIp(d.seg.dst), "2001:db8::2");
  EXPECT_EQ(d.seg.dport, 5432);
  EXPECT_THAT(PayloadOf(d.seg), ElementsAreArray(kPayload));
  EXPECT_EQ(d.seg.payload_wire_len, kPayload.size());
  EXPECT_EQ(d.stats.Total(), 0u);
}

// Drops the first n bytes (the link header of an Ethernet frame) from a frame.
std::vector<uint8_t> Without(const std::vector<uint8_t>& v, size_t n) {
  const auto rest = std::span<const uint8_t>(v).subspan(n);
  return {rest.begin(), rest.end()};
}

TEST(PacketDecoderTest, EthernetIpv4) { ExpectV4Hello(DecodeFrame(kEthernet, EthIpv4Frame())); }

TEST(PacketDecoderTest, EthernetIpv6) { ExpectV6Hello(DecodeFrame(kEthernet, EthIpv6Frame())); }

TEST(PacketDecoderTest, EthernetPaddingIsTrimmed) {
  std::vector<uint8_t> f = EthIpv4Frame();
  f.insert(f.end(), 7, 0xee);  // padding to the 60-byte minimum and an FCS-like tail
  Decoded d = DecodeFrame(kEthernet, f);
  ExpectV4Hello(d);

  std::vector<uint8_t> f6 = EthIpv6Frame();
  f6.insert(f6.end(), 4, 0xee);  // FCS
  ExpectV6Hello(DecodeFrame(kEthernet, f6));
}

TEST(PacketDecoderTest, VlanTags) {
  for (const std::vector<uint16_t>& tags : std::vector<std::vector<uint16_t>>{
           {0x8100}, {0x88a8, 0x8100}, {0x9100, 0x8100}, {0x88a8, 0x9100, 0x8100, 0x8100}}) {
    Frame f;
    f.U16(0x0200).U32(1);  // destination MAC
    f.U16(0x0200).U32(2);  // source MAC
    for (uint16_t tpid : tags) {
      f.U16(tpid);    // TPID: 802.1Q / 802.1ad / 0x9100
      f.U16(0x0064);  // TCI: PCP 0, VLAN 100
    }
    f.U16(0x0800);  // inner ethertype IPv4
    Ipv4(f, kTcpLen + kPayload.size());
    Tcp(f, kPayload);
    SCOPED_TRACE(tags.size());
    ExpectV4Hello(DecodeFrame(kEthernet, f.b));
  }
}

TEST(PacketDecoderTest, LinuxCookedSll) {
  Frame f;
  f.U16(0);         // packet type: to us
  f.U16(772);       // ARPHRD_LOOPBACK
  f.U16(6);         // link-layer address length
  f.U32(0).U32(0);  // address (8 bytes, padded)
  f.U16(0x0800);    // protocol: IPv4
  Ipv4(f, kTcpLen + kPayload.size());
  Tcp(f, kPayload);
  ExpectV4Hello(DecodeFrame(kSll, f.b));

  Frame v;  // SLL with a VLAN tag kept in the data
  v.U16(0).U16(1).U16(6).U32(0).U32(0);
  v.U16(0x8100);  // protocol: 802.1Q
  v.U16(0x0064);  // TCI
  v.U16(0x86dd);  // inner ethertype IPv6
  Ipv6(v, kTcpLen + kPayload.size(), 6);
  Tcp(v, kPayload);
  ExpectV6Hello(DecodeFrame(kSll, v.b));
}

TEST(PacketDecoderTest, LinuxCookedSll2) {
  Frame f;
  f.U16(0x86dd);                      // protocol: IPv6
  f.U16(0);                           // reserved
  f.U32(1);                           // interface index
  f.U16(1);                           // ARPHRD_ETHER
  f.U8(4);                            // packet type: outgoing
  f.U8(6);                            // address length
  f.U32(0x02000000).U32(0x00010000);  // address (8 bytes)
  Ipv6(f, kTcpLen + kPayload.size(), 6);
  Tcp(f, kPayload);
  ExpectV6Hello(DecodeFrame(kSll2, f.b));
}

TEST(PacketDecoderTest, NullAndLoop) {
  const auto v4 = Without(EthIpv4Frame(), 14);
  const auto v6 = Without(EthIpv6Frame(), 14);
  {
    Frame f;
    f.U32Le(2);  // AF_INET in a little-endian writer's order
    f.Bytes(v4);
    ExpectV4Hello(DecodeFrame(kNull, f.b));
  }
  {
    Frame f;
    f.U32(2);  // AF_INET in a big-endian writer's order
    f.Bytes(v4);
    ExpectV4Hello(DecodeFrame(kNull, f.b));
  }
  for (uint32_t af6 : {24u, 28u, 30u}) {  // AF_INET6 of NetBSD/OpenBSD, FreeBSD, macOS
    Frame f;
    f.U32Le(af6);
    f.Bytes(v6);
    ExpectV6Hello(DecodeFrame(kNull, f.b));
    Frame g;
    g.U32(af6);  // LOOP: network order
    g.Bytes(v6);
    ExpectV6Hello(DecodeFrame(kLoop, g.b));
  }
  {
    Frame f;
    f.U32(2);  // LOOP, AF_INET
    f.Bytes(v4);
    ExpectV4Hello(DecodeFrame(kLoop, f.b));
  }
  {
    Frame f;
    f.U32Le(7);  // an unknown family: not IP
    f.Bytes(v4);
    Decoded d = DecodeFrame(kNull, f.b);
    EXPECT_EQ(d.result, ParseResult::kNotThisProtocol);
    EXPECT_EQ(d.stats.Total(), 0u);
  }
}

TEST(PacketDecoderTest, RawIpLinkTypes) {
  const auto v4 = Without(EthIpv4Frame(), 14);
  const auto v6 = Without(EthIpv6Frame(), 14);
  for (uint32_t lt : {kRaw, kDltRaw12, kDltRaw14}) {
    ExpectV4Hello(DecodeFrame(lt, v4));
    ExpectV6Hello(DecodeFrame(lt, v6));
  }
  ExpectV4Hello(DecodeFrame(kIpv4, v4));
  ExpectV6Hello(DecodeFrame(kIpv6, v6));
  // The link type says IPv4 but the packet is IPv6.
  Decoded d = DecodeFrame(kIpv4, v6);
  EXPECT_EQ(d.result, ParseResult::kMalformed);
  EXPECT_EQ(d.stats.Get(Stage::kIp, Reason::kBadHeader), 1u);
  // Raw IP with version 5.
  std::vector<uint8_t> bad = v4;
  bad[0] = 0x55;
  d = DecodeFrame(kRaw, bad);
  EXPECT_EQ(d.result, ParseResult::kMalformed);
  EXPECT_EQ(d.stats.Get(Stage::kIp, Reason::kBadHeader), 1u);
}

TEST(PacketDecoderTest, UnsupportedLinkTypeIsCounted) {
  Decoded d = DecodeFrame(105 /* IEEE 802.11 */, EthIpv4Frame());
  EXPECT_EQ(d.result, ParseResult::kMalformed);
  EXPECT_EQ(d.stats.Get(Stage::kLink, Reason::kUnsupportedLink), 1u);
}

TEST(PacketDecoderTest, NonTcpIsNotCounted) {
  {
    Frame f;  // ARP
    Ethernet(f, 0x0806);
    f.Zeros(28);
    Decoded d = DecodeFrame(kEthernet, f.b);
    EXPECT_EQ(d.result, ParseResult::kNotThisProtocol);
    EXPECT_EQ(d.stats.Total(), 0u);
  }
  {
    Frame f;  // UDP over IPv4
    Ethernet(f, 0x0800);
    Ipv4(f, 8 + 4, 17);
    f.U16(53).U16(53).U16(12).U16(0);  // UDP ports, length, checksum
    f.U32(0xdeadbeef);
    Decoded d = DecodeFrame(kEthernet, f.b);
    EXPECT_EQ(d.result, ParseResult::kNotThisProtocol);
    EXPECT_EQ(d.stats.Total(), 0u);
  }
  {
    Frame f;  // ICMPv6 over IPv6
    Ethernet(f, 0x86dd);
    Ipv6(f, 8, 58);
    f.U32(0x80000000).U32(0);
    Decoded d = DecodeFrame(kEthernet, f.b);
    EXPECT_EQ(d.result, ParseResult::kNotThisProtocol);
    EXPECT_EQ(d.stats.Total(), 0u);
  }
  {
    Frame f;  // IPv6 with "no next header" after a hop-by-hop header
    Ethernet(f, 0x86dd);
    Ipv6(f, 8, 0);
    f.U8(59).U8(0).Zeros(6);  // hop-by-hop: next 59, length 0 (8 bytes), PadN
    Decoded d = DecodeFrame(kEthernet, f.b);
    EXPECT_EQ(d.result, ParseResult::kNotThisProtocol);
    EXPECT_EQ(d.stats.Total(), 0u);
  }
  {
    Frame f;  // 802.3 frame with an LLC header: the "ethertype" is a length
    Ethernet(f, 46);
    f.Zeros(46);
    EXPECT_EQ(DecodeFrame(kEthernet, f.b).result, ParseResult::kNotThisProtocol);
  }
}

TEST(PacketDecoderTest, Ipv4Options) {
  Frame f;
  Ethernet(f, 0x0800);
  f.U8(0x46);                   // version 4, IHL 6 (24 bytes)
  f.U8(0);                      // DSCP/ECN
  f.U16(24 + 20 + 5);           // total length
  f.U16(1).U16(0x4000);         // identification, DF
  f.U8(64).U8(6).U16(0);        // TTL, TCP, checksum
  f.Bytes(kSrc4).Bytes(kDst4);  // addresses
  f.U8(1).U8(1).U8(1).U8(0);    // options: NOP NOP NOP EOL
  Tcp(f, kPayload);
  ExpectV4Hello(DecodeFrame(kEthernet, f.b));
}

TEST(PacketDecoderTest, TcpOptions) {
  Frame f;
  Ethernet(f, 0x0800);
  Ipv4(f, 32 + kPayload.size());
  f.U16(40000).U16(5432);        // ports
  f.U32(0x01020304);             // seq
  f.U32(0x0a0b0c0d);             // ack
  f.U8(0x80);                    // data offset 8 (32 bytes)
  f.U8(kTcpPsh | kTcpAck);       // flags
  f.U16(512).U16(0).U16(0);      // window, checksum, urgent
  f.U8(1).U8(1);                 // NOP NOP
  f.U8(8).U8(10).U32(1).U32(2);  // timestamps option
  f.Bytes(kPayload);
  ExpectV4Hello(DecodeFrame(kEthernet, f.b));
}

TEST(PacketDecoderTest, Ipv4Fragments) {
  for (uint16_t frag : {uint16_t{0x2000} /* MF, offset 0 */, uint16_t{0x0010} /* offset 16 */,
                        uint16_t{0x2010} /* both */}) {
    Frame f;
    Ethernet(f, 0x0800);
    Ipv4(f, kTcpLen + kPayload.size(), 6, frag);
    Tcp(f, kPayload);
    Decoded d = DecodeFrame(kEthernet, f.b);
    EXPECT_EQ(d.result, ParseResult::kMalformed) << frag;
    EXPECT_EQ(d.stats.Get(Stage::kIp, Reason::kIpFragment), 1u) << frag;
    EXPECT_EQ(d.stats.Total(), 1u);
  }
}

TEST(PacketDecoderTest, Ipv6ExtensionHeaders) {
  Frame f;
  Ethernet(f, 0x86dd);
  const size_t ext = 8 + 24 + 16 + 8 + 16;
  Ipv6(f, ext + kTcpLen + kPayload.size(), 0);
  f.U8(43).U8(0).U8(1).U8(4).U32(0);           // hop-by-hop (8): next routing, PadN
  f.U8(60).U8(2).U8(0).U8(1).U32(0);           // routing (24): next dest opts, type 0, 1 left
  f.Zeros(16);                                 // ... one address
  f.U8(44).U8(1).U8(1).U8(12).Zeros(12);       // dest opts (16): next fragment, PadN
  f.U8(51).U8(0).U16(0x0000).U32(0x11223344);  // fragment (8): next AH, offset 0, M 0: atomic
  f.U8(6).U8(2).U16(0);                        // AH (16 = (2+2)*4): next TCP, reserved
  f.U32(0x100).U32(1).U32(0xaabbccdd);         // ... SPI, sequence, ICV
  Tcp(f, kPayload);
  ExpectV6Hello(DecodeFrame(kEthernet, f.b));
}

TEST(PacketDecoderTest, Ipv6Fragments) {
  for (uint16_t off_flags : {uint16_t{0x0001} /* M */, uint16_t{0x0008} /* offset 1 */}) {
    Frame f;
    Ethernet(f, 0x86dd);
    Ipv6(f, 8 + kTcpLen + kPayload.size(), 44);
    f.U8(6).U8(0).U16(off_flags).U32(7);  // fragment: next TCP, offset/M, identification
    Tcp(f, kPayload);
    Decoded d = DecodeFrame(kEthernet, f.b);
    EXPECT_EQ(d.result, ParseResult::kMalformed);
    EXPECT_EQ(d.stats.Get(Stage::kIp, Reason::kIpFragment), 1u);
  }
  Frame u;  // a fragment of a UDP datagram: not ours, not counted
  Ethernet(u, 0x86dd);
  Ipv6(u, 8 + 8, 44);
  u.U8(17).U8(0).U16(0x0001).U32(7);
  u.Zeros(8);
  Decoded d = DecodeFrame(kEthernet, u.b);
  EXPECT_EQ(d.result, ParseResult::kNotThisProtocol);
  EXPECT_EQ(d.stats.Total(), 0u);
}

TEST(PacketDecoderTest, BadHeadersAreCounted) {
  struct Case {
    const char* name;
    size_t offset;  // byte to change in EthIpv4Frame()
    uint8_t value;
    Stage stage;
    Reason reason;
  };
  const Case cases[] = {
      {"ip version 5", 14, 0x55, Stage::kIp, Reason::kBadHeader},
      {"ihl 4", 14, 0x44, Stage::kIp, Reason::kBadHeader},
      {"ihl 15 > frame", 14, 0x4f, Stage::kIp, Reason::kTruncated},
      {"total length 19", 17, 19, Stage::kIp, Reason::kBadLength},
      {"total length 30 < ip+tcp", 17, 30, Stage::kTcp, Reason::kBadLength},
      {"tcp data offset 4", 14 + 20 + 12, 0x40, Stage::kTcp, Reason::kBadHeader},
      {"tcp data offset 7 > ip length", 14 + 20 + 12, 0x70, Stage::kTcp, Reason::kBadLength},
  };
  for (const Case& c : cases) {
    std::vector<uint8_t> f = EthIpv4Frame();
    f[c.offset] = c.value;
    Decoded d = DecodeFrame(kEthernet, f);
    EXPECT_EQ(d.result, ParseResult::kMalformed) << c.name;
    EXPECT_EQ(d.stats.Get(c.stage, c.reason), 1u) << c.name;
    EXPECT_EQ(d.stats.Total(), 1u) << c.name;
  }
  // TCP options cut by the snap length (header longer than what was captured).
  std::vector<uint8_t> f = EthIpv4Frame();
  f[14 + 20 + 12] = 0x60;  // data offset 6: 4 option bytes, from the payload "hell"
  f.resize(14 + 20 + 22);  // the capture ends two bytes into the options
  Decoded d = DecodeFrame(kEthernet, f);
  EXPECT_EQ(d.result, ParseResult::kMalformed);
  EXPECT_EQ(d.stats.Get(Stage::kTcp, Reason::kTruncated), 1u);
}

TEST(PacketDecoderTest, SnaplenCutDeliversCapturedPayload) {
  std::vector<uint8_t> f = EthIpv4Frame();
  f.resize(f.size() - 3);  // "he" captured of "hello"
  Decoded d = DecodeFrame(kEthernet, f);
  ASSERT_EQ(d.result, ParseResult::kOk);
  EXPECT_EQ(std::string(d.seg.payload.begin(), d.seg.payload.end()), "he");
  EXPECT_EQ(d.seg.payload_wire_len, 5u);
  EXPECT_EQ(d.stats.Total(), 0u);

  std::vector<uint8_t> g = EthIpv6Frame();
  g.resize(g.size() - 5);  // headers only
  d = DecodeFrame(kEthernet, g);
  ASSERT_EQ(d.result, ParseResult::kOk);
  EXPECT_TRUE(d.seg.payload.empty());
  EXPECT_EQ(d.seg.payload_wire_len, 5u);
}

TEST(PacketDecoderTest, TsoZeroTotalLengthUsesCapturedBytes) {
  std::vector<uint8_t> f = EthIpv4Frame();
  f[16] = 0;
  f[17] = 0;  // total length 0, as a TSO send shows on the sending host
  Decoded d = DecodeFrame(kEthernet, f);
  ASSERT_EQ(d.result, ParseResult::kOk);
  EXPECT_THAT(PayloadOf(d.seg), ElementsAreArray(kPayload));
  EXPECT_EQ(d.seg.payload_wire_len, 5u);
}

TEST(PacketDecoderTest, SynWithoutPayload) {
  Frame f;
  Ethernet(f, 0x0800);
  Ipv4(f, kTcpLen);
  Tcp(f, {}, kTcpSyn);
  f.Zeros(6);  // Ethernet padding to 60 bytes
  Decoded d = DecodeFrame(kEthernet, f.b);
  ASSERT_EQ(d.result, ParseResult::kOk);
  EXPECT_EQ(d.seg.flags, kTcpSyn);
  EXPECT_TRUE(d.seg.payload.empty());
  EXPECT_EQ(d.seg.payload_wire_len, 0u);
}

// Every frame the tests above use, for the sweep.
std::vector<std::pair<uint32_t, std::vector<uint8_t>>> AllFrames() {
  std::vector<std::pair<uint32_t, std::vector<uint8_t>>> out;
  out.emplace_back(kEthernet, EthIpv4Frame());
  out.emplace_back(kEthernet, EthIpv6Frame());
  {
    std::vector<uint8_t> padded = EthIpv4Frame();
    padded.insert(padded.end(), 7, 0xee);
    out.emplace_back(kEthernet, padded);
  }
  {
    Frame f;
    f.U16(0x0200).U32(1).U16(0x0200).U32(2);
    f.U16(0x88a8).U16(10).U16(0x8100).U16(20).U16(0x86dd);
    Ipv6(f, kTcpLen + kPayload.size(), 6);
    Tcp(f, kPayload);
    out.emplace_back(kEthernet, f.b);
  }
  {
    Frame f;
    f.U16(0).U16(772).U16(6).U32(0).U32(0).U16(0x0800);
    Ipv4(f, kTcpLen + kPayload.size());
    Tcp(f, kPayload);
    out.emplace_back(kSll, f.b);
  }
  {
    Frame f;
    f.U16(0x0800).U16(0).U32(1).U16(1).U8(0).U8(6).U32(0).U32(0);
    Ipv4(f, kTcpLen + kPayload.size());
    Tcp(f, kPayload);
    out.emplace_back(kSll2, f.b);
  }
  {
    Frame f;
    f.U32Le(30).Bytes(Without(EthIpv6Frame(), 14));
    out.emplace_back(kNull, f.b);
    Frame g;
    g.U32(2).Bytes(Without(EthIpv4Frame(), 14));
    out.emplace_back(kLoop, g.b);
  }
  out.emplace_back(kRaw, Without(EthIpv4Frame(), 14));
  out.emplace_back(kIpv6, Without(EthIpv6Frame(), 14));
  {
    Frame f;
    Ethernet(f, 0x86dd);
    Ipv6(f, 8 + 24 + 16 + kTcpLen + kPayload.size(), 0);
    f.U8(43).U8(0).U8(1).U8(4).U32(0);
    f.U8(51).U8(2).Zeros(22);        // routing header, 24 bytes, next AH
    f.U8(6).U8(2).U16(0).Zeros(12);  // AH, 16 bytes, next TCP
    Tcp(f, kPayload);
    out.emplace_back(kEthernet, f.b);
  }
  {
    Frame f;  // a UDP datagram: never kOk
    Ethernet(f, 0x0800);
    Ipv4(f, 12, 17);
    f.U16(53).U16(53).U16(12).U16(0).U32(0);
    out.emplace_back(kEthernet, f.b);
  }
  {
    Frame f;  // an IPv4 fragment: never kOk
    Ethernet(f, 0x0800);
    Ipv4(f, kTcpLen + kPayload.size(), 6, 0x2000);
    Tcp(f, kPayload);
    out.emplace_back(kEthernet, f.b);
  }
  return out;
}

// Every prefix of every frame: while the prefix cuts into a header, the result is never kOk;
// once the headers are whole, it is kOk with the captured part of the payload (a snap length
// cut). Reads past the prefix would be caught by ASan (each prefix is its own allocation).
// Decodes every prefix of `frame`: a prefix cut before the payload is never kOk (and a drop
// counts once); one cut inside the payload gives the captured part, the wire length and the
// tunnel of the whole frame.
void ExpectPrefixesDecode(uint32_t linktype, const std::vector<uint8_t>& frame) {
  const Decoded full = DecodeFrame(linktype, frame);
  size_t header_end = frame.size() + 1;  // never kOk
  size_t payload_len = 0;
  if (full.result == ParseResult::kOk) {
    header_end = static_cast<size_t>(full.seg.payload.data() - full.storage.data());
    payload_len = full.seg.payload.size();
  }
  for (size_t n = 0; n < frame.size(); ++n) {
    auto prefix = std::make_unique<uint8_t[]>(n);
    std::copy_n(frame.begin(), n, prefix.get());
    TcpSegment seg;
    ParseStats stats;
    const ParseResult r =
        DecodeTcpSegment(linktype, std::span<const uint8_t>(prefix.get(), n), &seg, &stats);
    SCOPED_TRACE(::testing::Message()
                 << "linktype " << linktype << " size " << frame.size() << " prefix " << n);
    if (n < header_end) {
      EXPECT_TRUE(r == ParseResult::kMalformed || r == ParseResult::kNotThisProtocol);
      if (r == ParseResult::kMalformed) {
        EXPECT_EQ(stats.Total(), 1u);
      }
    } else {
      ASSERT_EQ(r, ParseResult::kOk);
      EXPECT_EQ(seg.payload.data(), prefix.get() + header_end);
      EXPECT_EQ(seg.payload.size(), std::min(n - header_end, payload_len));
      EXPECT_EQ(seg.payload_wire_len, full.seg.payload_wire_len);
      EXPECT_EQ(seg.tunnel, full.seg.tunnel);
    }
  }
}

TEST(PacketDecoderTest, TruncationSweep) {
  for (const auto& [linktype, frame] : AllFrames()) ExpectPrefixesDecode(linktype, frame);
}

// ---- Tunnels: the reference frames wrapped in each encapsulation. ----

const std::vector<uint8_t> kOuterSrc4 = {192, 0, 2, 1};
const std::vector<uint8_t> kOuterDst4 = {192, 0, 2, 2};
const std::vector<uint8_t> kOuterSrc6 = {0x20, 0x01, 0x0d, 0xb8, 0xff, 0, 0, 0,
                                         0,    0,    0,    0,    0,    0, 0, 1};
const std::vector<uint8_t> kOuterDst6 = {0x20, 0x01, 0x0d, 0xb8, 0xff, 0, 0, 0,
                                         0,    0,    0,    0,    0,    0, 0, 2};

// An outer (underlay) IP header from 192.0.2.1 to 192.0.2.2, or 2001:db8:ff00::1 to ::2.
void OuterIp(Frame& f, bool v6, size_t l4_len, uint8_t proto, uint16_t frag = 0x4000) {
  if (v6) {
    f.U32(0x60000000).U16(static_cast<uint32_t>(l4_len)).U8(proto).U8(64);
    f.Bytes(kOuterSrc6).Bytes(kOuterDst6);
    return;
  }
  f.U8(0x45).U8(0).U16(static_cast<uint32_t>(20 + l4_len)).U16(0x4321).U16(frag);
  f.U8(64).U8(proto).U16(0).Bytes(kOuterSrc4).Bytes(kOuterDst4);
}

// The encapsulations (outer Ethernet / IP from 192.0.2.1 to 192.0.2.2 or 2001:db8:ff00::1 to
// ::2, UDP, VXLAN, GENEVE with options, GRE, ERSPAN II/III) are those the eBPF tests use too.
using pgtlsmon::testing::tunnel::Erspan2;
using pgtlsmon::testing::tunnel::Erspan3;
using pgtlsmon::testing::tunnel::Geneve;
using pgtlsmon::testing::tunnel::Gre;
using pgtlsmon::testing::tunnel::kGreC;
using pgtlsmon::testing::tunnel::kGreK;
using pgtlsmon::testing::tunnel::kGreS;
using pgtlsmon::testing::tunnel::Outer;
using pgtlsmon::testing::tunnel::Udp;
using pgtlsmon::testing::tunnel::Vxlan;

const std::vector<uint8_t> kInnerEth4 = EthIpv4Frame();
const std::vector<uint8_t> kInnerIp4 = Without(EthIpv4Frame(), 14);
const std::vector<uint8_t> kInnerIp6 = Without(EthIpv6Frame(), 14);

void ExpectTunnel(const Decoded& d, TunnelType type, std::optional<uint32_t> id, bool outer_v6) {
  ASSERT_EQ(d.result, ParseResult::kOk);
  EXPECT_EQ(d.seg.tunnel.type, type);
  EXPECT_EQ(d.seg.tunnel.has_id, id.has_value());
  if (id) {
    EXPECT_EQ(d.seg.tunnel.id, *id);
  }
  EXPECT_EQ(FormatIp(d.seg.tunnel.outer_src), outer_v6 ? "2001:db8:ff00::1" : "192.0.2.1");
  EXPECT_EQ(FormatIp(d.seg.tunnel.outer_dst), outer_v6 ? "2001:db8:ff00::2" : "192.0.2.2");
  EXPECT_EQ(d.stats.tunnel_packets[static_cast<size_t>(type)], 1u);
}

TEST(TunnelDecoderTest, BareFramesHaveNoTunnel) {
  const Decoded d = DecodeFrame(kEthernet, EthIpv4Frame());
  EXPECT_EQ(d.seg.tunnel.type, TunnelType::kNone);
  EXPECT_EQ(d.stats.tunnel_packets, (ParseStats{}.tunnel_packets));
}

TEST(TunnelDecoderTest, VxlanOnBothDefaultPortsAndUnderlays) {
  for (bool v6 : {false, true}) {
    for (uint16_t port : {uint16_t{4789}, uint16_t{8472}}) {
      SCOPED_TRACE(::testing::Message() << "v6 " << v6 << " port " << port);
      const Decoded d = DecodeFrame(kEthernet, Outer(v6, 17, Udp(port, Vxlan(4242, kInnerEth4))));
      ExpectV4Hello(d);
      ExpectTunnel(d, TunnelType::kVxlan, 4242, v6);
    }
  }
}

TEST(TunnelDecoderTest, TunnelPortsAreConfigurable) {
  const auto frame = Outer(false, 17, Udp(9999, Vxlan(1, kInnerEth4)));
  EXPECT_EQ(DecodeFrame(kEthernet, frame).result, ParseResult::kNotThisProtocol);
  DecapConfig cfg;
  cfg.vxlan_ports = {9999};
  cfg.geneve_ports = {};
  TcpSegment seg;
  ParseStats stats;
  ASSERT_EQ(DecodeTcpSegment(kEthernet, frame, cfg, &seg, &stats), ParseResult::kOk);
  EXPECT_EQ(seg.tunnel.type, TunnelType::kVxlan);
  // The default ports are replaced, not added to.
  const auto default_port = Outer(false, 17, Udp(4789, Vxlan(1, kInnerEth4)));
  EXPECT_EQ(DecodeTcpSegment(kEthernet, default_port, cfg, &seg, &stats),
            ParseResult::kNotThisProtocol);
}

TEST(TunnelDecoderTest, GeneveWithOptions) {
  ExpectTunnel(DecodeFrame(kEthernet, Outer(false, 17, Udp(6081, Geneve(7, 0x6558, kInnerEth4)))),
               TunnelType::kGeneve, 7, false);
  const Decoded ip =
      DecodeFrame(kEthernet, Outer(true, 17, Udp(6081, Geneve(8, 0x86dd, kInnerIp6))));
  ExpectV6Hello(ip);
  ExpectTunnel(ip, TunnelType::kGeneve, 8, true);
}

TEST(TunnelDecoderTest, GreFlagCombinationsAndPayloads) {
  for (uint32_t flags :
       {0u, kGreC, kGreK, kGreS, kGreC | kGreK, kGreK | kGreS, kGreC | kGreK | kGreS}) {
    SCOPED_TRACE(::testing::Message() << "flags " << flags);
    const std::optional<uint32_t> id =
        (flags & kGreK) ? std::optional<uint32_t>(0x01020304) : std::nullopt;
    const Decoded v4 =
        DecodeFrame(kEthernet, Outer(false, 47, Gre(flags, 0x0800, 0x01020304, kInnerIp4)));
    ExpectV4Hello(v4);
    ExpectTunnel(v4, TunnelType::kGre, id, false);
    const Decoded v6 =
        DecodeFrame(kEthernet, Outer(true, 47, Gre(flags, 0x86dd, 0x01020304, kInnerIp6)));
    ExpectV6Hello(v6);
    ExpectTunnel(v6, TunnelType::kGre, id, true);
    const Decoded tap =
        DecodeFrame(kEthernet, Outer(false, 47, Gre(flags, 0x6558, 0x01020304, kInnerEth4)));
    ExpectV4Hello(tap);
    ExpectTunnel(tap, TunnelType::kGre, id, false);
  }
}

TEST(TunnelDecoderTest, ErspanTypes) {
  const Decoded t1 = DecodeFrame(kEthernet, Outer(false, 47, Gre(0, 0x88be, 0, kInnerEth4)));
  ExpectV4Hello(t1);
  ExpectTunnel(t1, TunnelType::kErspan, std::nullopt, false);
  const Decoded t2 = DecodeFrame(kEthernet, Outer(false, 47, Erspan2(513, kInnerEth4)));
  ExpectV4Hello(t2);
  ExpectTunnel(t2, TunnelType::kErspan, 513, false);
  for (bool sub : {false, true}) {
    const Decoded t3 = DecodeFrame(kEthernet, Outer(true, 47, Erspan3(1023, sub, kInnerEth4)));
    ExpectV4Hello(t3);
    ExpectTunnel(t3, TunnelType::kErspan, 1023, true);
  }
}

TEST(TunnelDecoderTest, IpInIp) {
  for (bool outer_v6 : {false, true}) {
    const Decoded v4 = DecodeFrame(kEthernet, Outer(outer_v6, 4, kInnerIp4));
    ExpectV4Hello(v4);
    ExpectTunnel(v4, TunnelType::kIpip, std::nullopt, outer_v6);
    const Decoded v6 = DecodeFrame(kEthernet, Outer(outer_v6, 41, kInnerIp6));
    ExpectV6Hello(v6);
    ExpectTunnel(v6, TunnelType::kIpip, std::nullopt, outer_v6);
  }
}

TEST(TunnelDecoderTest, NestedTunnelsReportTheOutermostAndCapTheDepth) {
  // VXLAN in GRE: the record's tunnel is the GRE layer; both layers count.
  const auto vxlan = Outer(false, 17, Udp(4789, Vxlan(5, kInnerEth4)));
  const Decoded d = DecodeFrame(kEthernet, Outer(true, 47, Gre(kGreK, 0x6558, 9, vxlan)));
  ExpectV4Hello(d);
  ExpectTunnel(d, TunnelType::kGre, 9, true);
  EXPECT_EQ(d.stats.tunnel_packets[static_cast<size_t>(TunnelType::kVxlan)], 1u);

  // IP in IP nested kMaxTunnelDepth deep decodes; one more is dropped and counted.
  std::vector<uint8_t> ip = kInnerIp4;
  for (int depth = 1; depth <= kMaxTunnelDepth + 1; ++depth) {
    Frame f;
    OuterIp(f, false, ip.size(), 4);
    ip = f.Bytes(ip).b;
    const Decoded n = DecodeFrame(kIpv4, ip);
    SCOPED_TRACE(::testing::Message() << "depth " << depth);
    if (depth <= kMaxTunnelDepth) {
      ExpectV4Hello(n);
    } else {
      EXPECT_EQ(n.result, ParseResult::kMalformed);
      EXPECT_EQ(n.stats.Get(Stage::kTunnel, Reason::kTooDeep), 1u);
    }
  }
}

TEST(TunnelDecoderTest, BadTunnelsAreCountedByReason) {
  struct Case {
    const char* what;
    std::vector<uint8_t> frame;
    Reason reason;
  };
  const std::vector<Case> cases = {
      {"VXLAN without the I flag", Outer(false, 17, Udp(4789, Vxlan(1, kInnerEth4, 0))),
       Reason::kBadHeader},
      {"GENEVE version 1", Outer(false, 17, Udp(6081, Geneve(1, 0x6558, kInnerEth4, 3, 1))),
       Reason::kBadHeader},
      {"GENEVE carrying MPLS", Outer(false, 17, Udp(6081, Geneve(1, 0x8847, kInnerEth4))),
       Reason::kUnsupportedProtocol},
      {"GRE version 1 (PPTP)", Outer(false, 47, Gre(1, 0x880b, 0, kInnerIp4)), Reason::kBadHeader},
      {"GRE carrying MPLS", Outer(false, 47, Gre(0, 0x8847, 0, kInnerIp4)),
       Reason::kUnsupportedProtocol},
      {"GRE with source routing", Outer(false, 47, Gre(0x4000, 0x0800, 0, kInnerIp4)),
       Reason::kUnsupportedProtocol},
      {"a fragment of GRE", Outer(false, 47, Gre(0, 0x0800, 0, kInnerIp4), 0x2000),
       Reason::kIpFragment},
      {"a fragment of IP in IP", Outer(false, 4, kInnerIp4, 0x0010), Reason::kIpFragment},
      {"a first fragment to the VXLAN port",
       Outer(false, 17, Udp(4789, Vxlan(1, kInnerEth4)), 0x2000), Reason::kIpFragment},
      {"a UDP length past the IP length",
       [] {
         auto u = Udp(4789, Vxlan(1, kInnerEth4));
         u[4] = 0xff;
         return Outer(false, 17, u);
       }(),
       Reason::kBadLength},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const Decoded d = DecodeFrame(kEthernet, c.frame);
    EXPECT_EQ(d.result, ParseResult::kMalformed);
    EXPECT_EQ(d.stats.Get(Stage::kTunnel, c.reason), 1u);
    EXPECT_EQ(d.stats.Total(), 1u);
  }
  // A later fragment of UDP cannot be told from any other UDP: not ours, not counted.
  const Decoded later = DecodeFrame(kEthernet, Outer(false, 17, Udp(4789, {}), 0x0010));
  EXPECT_EQ(later.result, ParseResult::kNotThisProtocol);
  EXPECT_EQ(later.stats.Total(), 0u);
}

// Every prefix of every wrapped frame: no read past the end (ASan), one count per drop, and
// the inner payload once the headers are whole (a snap length cut inside the inner payload).
TEST(TunnelDecoderTest, TruncationSweep) {
  const auto vxlan = Outer(false, 17, Udp(4789, Vxlan(5, kInnerEth4)));
  const std::vector<std::vector<uint8_t>> frames = {
      vxlan,
      Outer(true, 17, Udp(8472, Vxlan(5, kInnerEth4))),
      Outer(false, 17, Udp(6081, Geneve(7, 0x6558, kInnerEth4))),
      Outer(false, 47, Gre(kGreC | kGreK | kGreS, 0x0800, 3, kInnerIp4)),
      Outer(false, 47, Gre(kGreK, 0x6558, 3, kInnerEth4)),
      Outer(false, 47, Gre(0, 0x88be, 0, kInnerEth4)),
      Outer(false, 47, Erspan2(4, kInnerEth4)),
      Outer(true, 47, Erspan3(4, true, kInnerEth4)),
      Outer(false, 41, kInnerIp6),
      Outer(true, 4, kInnerIp4),
      Outer(true, 47, Gre(kGreK, 0x6558, 9, vxlan)),
  };
  for (const auto& frame : frames) {
    ASSERT_EQ(DecodeFrame(kEthernet, frame).result, ParseResult::kOk);
    ExpectPrefixesDecode(kEthernet, frame);
  }
}

}  // namespace
}  // namespace pgtlsmon::parser
