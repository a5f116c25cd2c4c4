// tests/bpf/parse_helpers_test.cc: the kernel program's classification logic (bpf/parse_helpers.h)
// compiled in user space. Needs no privileges.
#include "tests/bpf/bpf_stubs.h"  // before parse_helpers.h
// clang-format off
#include "bpf/parse_helpers.h"
// clang-format on

#include <gtest/gtest.h>

#include <cstring>
#include <span>
#include <vector>

#include "tests/testing/packet_builder.h"
#include "tests/testing/tunnel_frames.h"

namespace {

using pgtlsmon::testing::TcpFrame;

// The bytes of `frame` from `off` on, as the C helpers take them: a bare pointer (they read a
// fixed header, as the kernel's verifier-checked code does; each frame here is long enough).
const uint8_t* At(const std::vector<uint8_t>& frame, size_t off) {
  return std::span<const uint8_t>(frame).subspan(off).data();
}

constexpr uint32_t kCap = 1000;
constexpr uint32_t kHdr = 54;

TEST(ParseHelpers, Ipv4Header) {
  const auto f =
      TcpFrame{}.Ipv4({192, 168, 1, 2}, {10, 0, 0, 9}).Ipv4Options(8).Payload(10).Build();
  pgtls_l3 l3{};
  ASSERT_EQ(pgtls_parse_ipv4(At(f, 14), &l3), PGTLS_PARSE_OK);
  EXPECT_EQ(l3.hdr_len, 28u);
  EXPECT_EQ(l3.l3_len, 28u + 20u + 10u);
  EXPECT_EQ(l3.is_v6, 0);
  const uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 2};
  EXPECT_EQ(std::memcmp(l3.saddr, mapped, 16), 0);
}

TEST(ParseHelpers, Ipv4RejectsBadVersionIhlAndLength) {
  auto f = TcpFrame{}.Build();
  pgtls_l3 l3{};
  auto g = f;
  g[14] = 0x65;  // version 6 in an IPv4 frame
  EXPECT_EQ(pgtls_parse_ipv4(At(g, 14), &l3), PGTLS_PARSE_TRUNCATED);
  g = f;
  g[14] = 0x44;  // IHL 16 bytes
  EXPECT_EQ(pgtls_parse_ipv4(At(g, 14), &l3), PGTLS_PARSE_TRUNCATED);
  g = TcpFrame{}.IpLengthOverride(19).Build();
  EXPECT_EQ(pgtls_parse_ipv4(At(g, 14), &l3), PGTLS_PARSE_TRUNCATED);
  g = TcpFrame{}.IpLengthOverride(0).Build();  // TSO super-packet: length unknown, fine
  EXPECT_EQ(pgtls_parse_ipv4(At(g, 14), &l3), PGTLS_PARSE_OK);
  EXPECT_EQ(l3.l3_len, 0u);
}

TEST(ParseHelpers, Ipv4FragmentAndNonTcp) {
  pgtls_l3 l3{};
  auto f = TcpFrame{}.Ipv4FragOffset(10).Build();
  EXPECT_EQ(pgtls_parse_ipv4(At(f, 14), &l3), PGTLS_PARSE_FRAGMENT);
  f = TcpFrame{}.Build();
  f[14 + 9] = 17;  // UDP
  EXPECT_EQ(pgtls_parse_ipv4(At(f, 14), &l3), PGTLS_PARSE_NOT_OURS);
}

TEST(ParseHelpers, Ipv6HeaderAndExtensions) {
  const auto f = TcpFrame{}
                     .Ipv6({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7},
                           {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8})
                     .Ipv6Ext(0, 16)  // hop-by-hop
                     .Ipv6Ext(44, 8)  // first fragment
                     .Ipv6Ext(60, 8)  // destination options
                     .Payload(5)
                     .Build();
  pgtls_l3 l3{};
  ASSERT_EQ(pgtls_parse_ipv6(At(f, 14), &l3), PGTLS_PARSE_OK);
  EXPECT_EQ(l3.l3_len, 40u + 32u + 20u + 5u);
  EXPECT_EQ(l3.saddr[15], 7);
  size_t off = 14 + 40;
  std::vector<uint8_t> seen;
  for (int i = 0; i < PGTLS_MAX_IPV6_EXT && pgtls_ipv6_is_ext(l3.proto); ++i) {
    __u32 len = 0;
    __u8 next = 0;
    ASSERT_EQ(pgtls_ipv6_ext(l3.proto, At(f, off), &len, &next), PGTLS_PARSE_OK);
    seen.push_back(l3.proto);
    l3.proto = next;
    off += len;
  }
  EXPECT_EQ(seen, (std::vector<uint8_t>{0, 44, 60}));
  EXPECT_EQ(l3.proto, PGTLS_IPPROTO_TCP);
  EXPECT_EQ(off, 14u + 40u + 32u);
}

TEST(ParseHelpers, Ipv6NonFirstFragment) {
  const auto f = TcpFrame{}.Ipv6({}, {}).Ipv6Ext(44, 8, 3).Build();
  __u32 len = 0;
  __u8 next = 0;
  EXPECT_EQ(pgtls_ipv6_ext(44, At(f, 14 + 40), &len, &next), PGTLS_PARSE_FRAGMENT);
}

TEST(ParseHelpers, Tcp) {
  const auto f = TcpFrame{}.Ports(40001, 6432).Flags(0x12).TcpOptions(12).Build();
  pgtls_l4 l4{};
  ASSERT_EQ(pgtls_parse_tcp(At(f, 34), &l4), PGTLS_PARSE_OK);
  EXPECT_EQ(l4.sport, 40001);
  EXPECT_EQ(l4.dport, 6432);
  EXPECT_EQ(l4.hdr_len, 32u);
  EXPECT_EQ(l4.flags, 0x12);
  auto g = f;
  g[34 + 12] = 0x40;  // data offset 16 bytes
  EXPECT_EQ(pgtls_parse_tcp(At(g, 34), &l4), PGTLS_PARSE_TRUNCATED);
}

TEST(ParseHelpers, PortFilter) {
  volatile __u16 ports[PGTLS_MAX_PORTS] = {5432, 6432};
  EXPECT_TRUE(pgtls_port_monitored(ports, 2, 0, 40000, 5432));
  EXPECT_TRUE(pgtls_port_monitored(ports, 2, 0, 6432, 40000));
  EXPECT_FALSE(pgtls_port_monitored(ports, 2, 0, 40000, 80));
  EXPECT_FALSE(pgtls_port_monitored(ports, 1, 0, 40000, 6432));  // only the first is active
  EXPECT_TRUE(pgtls_port_monitored(ports, 0, 1, 40000, 80));     // any port
  EXPECT_FALSE(pgtls_port_monitored(ports, 2, 0, 0, 0));         // unused slots are 0
}

TEST(ParseHelpers, FlowKeyIsTheSameForBothDirections) {
  pgtls_l3 a{};
  pgtls_l4 pa{};
  a.saddr[15] = 9;  // ::9 -> ::1
  a.daddr[15] = 1;
  pa.sport = 40000;
  pa.dport = 5432;
  pgtls_l3 b = a;
  pgtls_l4 pb = pa;
  std::swap(b.saddr, b.daddr);
  std::swap(pb.sport, pb.dport);
  pgtls_flow_key ka{};
  pgtls_flow_key kb{};
  EXPECT_EQ(pgtls_flow_key_init(&ka, &a, &pa), static_cast<__u32>(PGTLS_DIR_HI_TO_LO));
  EXPECT_EQ(pgtls_flow_key_init(&kb, &b, &pb), static_cast<__u32>(PGTLS_DIR_LO_TO_HI));
  EXPECT_EQ(std::memcmp(&ka, &kb, sizeof(ka)), 0);
  EXPECT_EQ(ka.addr_lo[15], 1);
  EXPECT_EQ(ka.port_lo, 5432);
  // Same address both sides (loopback): the port decides.
  a.daddr[15] = 9;
  EXPECT_EQ(pgtls_flow_key_init(&ka, &a, &pa), static_cast<__u32>(PGTLS_DIR_HI_TO_LO));
  EXPECT_EQ(ka.port_lo, 5432);
}

struct DecideCase {
  const char* name;
  __u32 state;
  __u64 passed;
  __u8 flags;
  __u32 payload;
  __u32 want_action;
  __u32 want_snap;
  __u32 want_taken;
  __u32 want_cut;
};

TEST(ParseHelpers, Decide) {
  const DecideCase cases[] = {
      {"syn", PGTLS_FLOW_HANDSHAKE, 0, 0x02, 0, PGTLS_ACT_PASS, kHdr, 0, 0},
      {"pure ack", PGTLS_FLOW_HANDSHAKE, 0, 0x10, 0, PGTLS_ACT_PASS, kHdr, 0, 0},
      {"data under cap", PGTLS_FLOW_HANDSHAKE, 100, 0x18, 200, PGTLS_ACT_PASS, kHdr + 200, 200, 0},
      {"data reaching cap", PGTLS_FLOW_HANDSHAKE, 800, 0x18, 200, PGTLS_ACT_PASS, kHdr + 200, 200,
       0},
      {"data crossing cap", PGTLS_FLOW_HANDSHAKE, 900, 0x18, 200, PGTLS_ACT_PASS, kHdr + 100, 100,
       1},
      {"data beyond cap", PGTLS_FLOW_HANDSHAKE, 1000, 0x18, 1, PGTLS_ACT_CAP_DROP, 0, 0, 0},
      {"ack beyond cap", PGTLS_FLOW_HANDSHAKE, 1000, 0x10, 0, PGTLS_ACT_PASS, kHdr, 0, 0},
      {"fin+data beyond cap", PGTLS_FLOW_HANDSHAKE, 5000, 0x11, 10, PGTLS_ACT_PASS, kHdr, 0, 1},
      {"done data", PGTLS_FLOW_DONE, 0, 0x18, 500, PGTLS_ACT_SKIP, 0, 0, 0},
      {"done ack", PGTLS_FLOW_DONE, 0, 0x10, 0, PGTLS_ACT_SKIP, 0, 0, 0},
      {"done fin", PGTLS_FLOW_DONE, 0, 0x11, 30, PGTLS_ACT_PASS, kHdr, 0, 0},
      {"done rst", PGTLS_FLOW_DONE, 0, 0x04, 0, PGTLS_ACT_PASS, kHdr, 0, 0},
      {"done syn", PGTLS_FLOW_DONE, 0, 0x02, 0, PGTLS_ACT_PASS, kHdr, 0, 0},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    pgtls_verdict v{};
    pgtls_decide(c.state, c.passed, c.flags, kHdr, c.payload, kCap, &v);
    EXPECT_EQ(v.action, c.want_action);
    EXPECT_EQ(v.snap, c.want_snap);
    EXPECT_EQ(v.payload_taken, c.want_taken);
    EXPECT_EQ(v.cut, c.want_cut);
  }
}

namespace w = pgtlsmon::testing::tunnel;

TEST(ParseHelpers, Ipv4AnyProtocolAndFragments) {
  pgtls_l3 l3{};
  const auto gre = w::Outer(false, 47, w::Gre(0, 0x0800, 0, {}), w::kIpv4FlagDf);
  ASSERT_EQ(pgtls_parse_ipv4_any(At(gre, 14), &l3), PGTLS_PARSE_OK);
  EXPECT_EQ(l3.proto, 47);
  EXPECT_EQ(l3.frag, 0);
  EXPECT_EQ(pgtls_parse_ipv4(At(gre, 14), &l3), PGTLS_PARSE_NOT_OURS);
  const auto first = w::Outer(false, 47, w::Gre(0, 0x0800, 0, {}), w::kIpv4FlagMf);
  ASSERT_EQ(pgtls_parse_ipv4_any(At(first, 14), &l3), PGTLS_PARSE_OK);
  EXPECT_EQ(l3.frag, PGTLS_FRAG_FIRST);
  const auto later = w::Outer(false, 47, w::Gre(0, 0x0800, 0, {}), 3);
  ASSERT_EQ(pgtls_parse_ipv4_any(At(later, 14), &l3), PGTLS_PARSE_OK);
  EXPECT_EQ(l3.frag, PGTLS_FRAG_LATER);
}

TEST(ParseHelpers, VxlanAndGeneve) {
  pgtls_tunnel_hdr t{};
  EXPECT_EQ(pgtls_parse_vxlan(w::Vxlan(1, {}).data(), &t), PGTLS_PARSE_OK);
  EXPECT_EQ(t.hdr_len, 8u);
  EXPECT_EQ(t.next, PGTLS_NEXT_ETH);
  EXPECT_EQ(t.type, PGTLS_TUNNEL_VXLAN);
  EXPECT_EQ(pgtls_parse_vxlan(w::Vxlan(1, {}, 0).data(), &t), PGTLS_PARSE_BAD_HEADER);

  EXPECT_EQ(pgtls_parse_geneve(w::Geneve(1, 0x6558, {}, 3).data(), &t), PGTLS_PARSE_OK);
  EXPECT_EQ(t.hdr_len, 8u + 12u);
  EXPECT_EQ(t.next, PGTLS_NEXT_ETH);
  EXPECT_EQ(t.type, PGTLS_TUNNEL_GENEVE);
  EXPECT_EQ(pgtls_parse_geneve(w::Geneve(1, 0x86dd, {}, 0).data(), &t), PGTLS_PARSE_OK);
  EXPECT_EQ(t.hdr_len, 8u);
  EXPECT_EQ(t.next, PGTLS_NEXT_IPV6);
  EXPECT_EQ(pgtls_parse_geneve(w::Geneve(1, 0x0800, {}, 63).data(), &t), PGTLS_PARSE_OK);
  EXPECT_EQ(t.hdr_len, 8u + 252u);
  EXPECT_EQ(pgtls_parse_geneve(w::Geneve(1, 0x0800, {}, 0, 1).data(), &t), PGTLS_PARSE_BAD_HEADER);
  EXPECT_EQ(pgtls_parse_geneve(w::Geneve(1, 0x8847, {}, 0).data(), &t), PGTLS_PARSE_UNSUPPORTED);
}

TEST(ParseHelpers, GreFlagsAndErspan) {
  pgtls_tunnel_hdr t{};
  const struct {
    uint32_t flags;
    uint32_t len;
  } gre[] = {{0, 4},
             {w::kGreC, 8},
             {w::kGreK, 8},
             {w::kGreS, 8},
             {w::kGreC | w::kGreK, 12},
             {w::kGreC | w::kGreK | w::kGreS, 16}};
  for (const auto& g : gre) {
    SCOPED_TRACE(g.flags);
    EXPECT_EQ(pgtls_parse_gre(w::Gre(g.flags, 0x0800, 1, {}).data(), &t), PGTLS_PARSE_OK);
    EXPECT_EQ(t.hdr_len, g.len);
    EXPECT_EQ(t.next, PGTLS_NEXT_IPV4);
    EXPECT_EQ(t.type, PGTLS_TUNNEL_GRE);
    EXPECT_EQ(t.erspan, 0u);
  }
  EXPECT_EQ(pgtls_parse_gre(w::Gre(0, 0x6558, 0, {}).data(), &t), PGTLS_PARSE_OK);
  EXPECT_EQ(t.next, PGTLS_NEXT_ETH);
  EXPECT_EQ(pgtls_parse_gre(w::Gre(0, 0x86dd, 0, {}).data(), &t), PGTLS_PARSE_OK);
  EXPECT_EQ(t.next, PGTLS_NEXT_IPV6);
  EXPECT_EQ(pgtls_parse_gre(w::Gre(1, 0x0800, 0, {}).data(), &t), PGTLS_PARSE_BAD_HEADER);
  EXPECT_EQ(pgtls_parse_gre(w::Gre(0x4000, 0x0800, 0, {}).data(), &t), PGTLS_PARSE_UNSUPPORTED);
  EXPECT_EQ(pgtls_parse_gre(w::Gre(0, 0x880b, 0, {}).data(), &t), PGTLS_PARSE_UNSUPPORTED);

  // ERSPAN: the GRE header names the type, the ERSPAN header follows it.
  EXPECT_EQ(pgtls_parse_gre(w::Erspan1({}).data(), &t), PGTLS_PARSE_OK);
  EXPECT_EQ(t.erspan, 1u);
  EXPECT_EQ(t.type, PGTLS_TUNNEL_ERSPAN);
  const auto e2 = w::Erspan2(513, {});
  ASSERT_EQ(pgtls_parse_gre(e2.data(), &t), PGTLS_PARSE_OK);
  EXPECT_EQ(t.erspan, 2u);
  EXPECT_EQ(pgtls_parse_erspan(2, At(e2, t.hdr_len), &t), PGTLS_PARSE_OK);
  EXPECT_EQ(t.hdr_len, 8u);
  EXPECT_EQ(t.next, PGTLS_NEXT_ETH);
  const auto e2bad = w::Erspan2(513, {}, 2);
  EXPECT_EQ(pgtls_parse_erspan(2, At(e2bad, 8), &t), PGTLS_PARSE_BAD_HEADER);
  for (bool sub : {false, true}) {
    const auto e3 = w::Erspan3(1023, sub, {});
    ASSERT_EQ(pgtls_parse_gre(e3.data(), &t), PGTLS_PARSE_OK);
    EXPECT_EQ(t.erspan, 3u);
    EXPECT_EQ(pgtls_parse_erspan(3, At(e3, 8), &t), PGTLS_PARSE_OK);
    EXPECT_EQ(t.hdr_len, sub ? 20u : 12u);
    EXPECT_EQ(t.next, PGTLS_NEXT_ETH);
  }
  const auto e3ip = w::Erspan3(1, false, {}, 2);
  EXPECT_EQ(pgtls_parse_erspan(3, At(e3ip, 8), &t), PGTLS_PARSE_OK);
  EXPECT_EQ(t.next, PGTLS_NEXT_IP_BY_VERSION);
  const auto e3bad = w::Erspan3(1, false, {}, 1);
  EXPECT_EQ(pgtls_parse_erspan(3, At(e3bad, 8), &t), PGTLS_PARSE_UNSUPPORTED);
}

TEST(ParseHelpers, VlanTagsIncludePreStandardQinQ) {
  EXPECT_TRUE(pgtls_is_vlan(0x8100));
  EXPECT_TRUE(pgtls_is_vlan(0x88a8));
  EXPECT_TRUE(pgtls_is_vlan(0x9100));
  EXPECT_FALSE(pgtls_is_vlan(0x0800));
}

}  // namespace
