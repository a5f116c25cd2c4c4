// tests/bpf/bpf_prog_test.cc: the socket filter run on crafted frames with BPF_PROG_TEST_RUN
// (bpf_prog_test_run_opts; socket filters get an skb built from an Ethernet frame). Each case is
// a sequence of frames with the expected return value (the snap length: 0 = not passed), then
// the per-CPU counters and the flow map entry. Needs CAP_BPF (root); skipped otherwise.
//
// Note: BPF_PROG_TEST_RUN pulls the Ethernet header before running a socket filter, so skb->len
// (the byte counters) is the frame length minus 14 here; on a real AF_PACKET socket it is the
// whole frame.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "capture.skel.h"
#include "capture/bpf_abi.h"
#include "capture/bpf_common.h"
#include "capture/bpf_source.h"
#include "tests/testing/packet_builder.h"
#include "tests/testing/tunnel_frames.h"

namespace {

using pgtlsmon::capture::BpfSource;
using pgtlsmon::capture::FlowTuple;
namespace abi = pgtlsmon::capture::abi;
namespace t = pgtlsmon::testing;
namespace w = pgtlsmon::testing::tunnel;

constexpr uint32_t kCap = 1000;
constexpr t::Ipv4Addr kClient{10, 0, 0, 1};
constexpr t::Ipv4Addr kServer{10, 0, 0, 2};
constexpr uint16_t kClientPort = 40000;
const FlowTuple kFlow = FlowTuple::From(kClient, kClientPort, kServer, 5432);

t::TcpFrame C2S() { return t::TcpFrame{}.Ipv4(kClient, kServer).Ports(kClientPort, 5432); }
t::TcpFrame S2C() { return t::TcpFrame{}.Ipv4(kServer, kClient).Ports(5432, kClientPort); }
uint32_t Len(const t::TcpFrame& f) { return static_cast<uint32_t>(f.Build().size()); }
uint32_t Hdr(const t::TcpFrame& f) { return static_cast<uint32_t>(f.HeaderLen()); }

struct Step {
  std::vector<uint8_t> frame;
  uint32_t want_ret;
  bool mark_done_before = false;  // user space marks kFlow done before this frame
};

struct Case {
  std::string name;
  std::vector<Step> steps;
  std::map<abi::pgtls_stat, uint64_t> want_stats;         // only the listed ones
  std::map<abi::pgtls_drop_reason, uint64_t> want_drops;  // all others must be 0
  std::optional<uint32_t> want_state;                     // kFlow's entry; nullopt: absent
  uint64_t want_passed_c2s = 0;
  uint64_t want_skipped = 0;
};

std::vector<uint8_t> Cut(std::vector<uint8_t> f, size_t n) {
  f.resize(n);
  return f;
}
std::vector<uint8_t> WithIpProto(std::vector<uint8_t> f, uint8_t proto) {
  f[14 + 9] = proto;
  return f;
}
std::vector<uint8_t> WithEthertype(std::vector<uint8_t> f, uint16_t type) {
  f[12] = static_cast<uint8_t>(type >> 8);
  f[13] = static_cast<uint8_t>(type & 0xff);
  return f;
}
std::vector<uint8_t> Padded(std::vector<uint8_t> f, size_t n) {
  f.resize(f.size() + n, 0);
  return f;
}

std::vector<Case> Cases() {
  using S = abi::pgtls_stat;
  using D = abi::pgtls_drop_reason;
  const auto syn = C2S().Flags(t::kTcpSyn);
  const auto synack = S2C().Flags(t::kTcpSyn | t::kTcpAck);
  const auto data100 = C2S().Flags(t::kTcpPsh | t::kTcpAck).Payload(100);
  const auto data600 = C2S().Flags(t::kTcpPsh | t::kTcpAck).Payload(600);
  const auto srv600 = S2C().Flags(t::kTcpPsh | t::kTcpAck).Payload(600);
  const auto ack = C2S().Flags(t::kTcpAck);
  const auto fin_data = C2S().Flags(t::kTcpFin | t::kTcpAck).Payload(30);
  const auto rst = S2C().Flags(t::kTcpRst);
  const t::Ipv6Addr c6{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  const t::Ipv6Addr s6{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  const auto v6 = [&] { return t::TcpFrame{}.Ipv6(c6, s6).Ports(kClientPort, 5432); };

  std::vector<Case> cs;
  cs.push_back({"syn passed whole, flow created",
                {{syn.Build(), Len(syn)}, {synack.Build(), Len(synack)}},
                {{S::PGTLS_STAT_PKTS_SEEN, 2},
                 {S::PGTLS_STAT_PKTS_PASSED, 2},
                 {S::PGTLS_STAT_FLOWS_CREATED, 1},
                 {S::PGTLS_STAT_BYTES_PASSED, Len(syn) + Len(synack)}},
                {},
                abi::PGTLS_FLOW_HANDSHAKE});
  cs.push_back({"payload within cap passed whole",
                {{syn.Build(), Len(syn)}, {data100.Build(), Len(data100)}},
                {{S::PGTLS_STAT_PKTS_PASSED, 2}, {S::PGTLS_STAT_PKTS_CUT, 0}},
                {},
                abi::PGTLS_FLOW_HANDSHAKE,
                100});
  cs.push_back(
      {"payload beyond the per-direction cap cut, then dropped and counted",
       {{data600.Build(), Len(data600)},
        {data600.Build(), Hdr(data600) + 400},  // cut at the cap
        {data100.Build(), 0},                   // cap reached
        {ack.Build(), Len(ack)},                // pure ACK still passed
        {srv600.Build(), Len(srv600)}},         // other direction has its own cap
       {{S::PGTLS_STAT_PKTS_SEEN, 5}, {S::PGTLS_STAT_PKTS_PASSED, 4}, {S::PGTLS_STAT_PKTS_CUT, 1}},
       {{D::PGTLS_DROP_CAP_REACHED, 1}},
       abi::PGTLS_FLOW_HANDSHAKE,
       kCap});
  cs.push_back({"non-monitored port ignored",
                {{C2S().Ports(40000, 80).Payload(10).Build(), 0}},
                {{S::PGTLS_STAT_PKTS_SEEN, 0},
                 {S::PGTLS_STAT_PKTS_IGNORED, 1},
                 {S::PGTLS_STAT_FLOWS_CREATED, 0}},
                {},
                std::nullopt});
  cs.push_back({"second configured port monitored (server side as source)",
                {{S2C().Ports(6432, 40000).Payload(10).Build(), Len(S2C().Payload(10))}},
                {{S::PGTLS_STAT_PKTS_PASSED, 1}},
                {},
                std::nullopt});
  cs.push_back(
      {"udp and arp ignored",
       {{WithIpProto(data100.Build(), 17), 0}, {WithEthertype(data100.Build(), 0x0806), 0}},
       {{S::PGTLS_STAT_PKTS_IGNORED, 2}, {S::PGTLS_STAT_PKTS_SEEN, 0}},
       {},
       std::nullopt});
  cs.push_back({"truncated ipv4, tcp, ipv6 headers dropped and counted",
                // BPF_PROG_TEST_RUN rejects untagged IPv4/IPv6 frames shorter than the IP
                // header (EINVAL), so cut IP headers are tested behind a VLAN tag.
                {{Cut(C2S().Vlan(5).Build(), 14 + 4 + 10), 0},
                 {Cut(v6().Vlan(5).Build(), 14 + 4 + 30), 0},
                 {Cut(data100.Build(), 14 + 20 + 10), 0},
                 {Cut(v6().Ipv6Ext(0, 8).Build(), 14 + 40 + 4), 0},  // in an extension header
                 {Cut(v6().Build(), 14 + 40 + 10), 0},
                 {C2S().IpLengthOverride(30).Build(), 0}},  // IP length inside TCP header
                {{S::PGTLS_STAT_PKTS_SEEN, 0}},
                {{D::PGTLS_DROP_TRUNCATED_HEADER, 6}},
                std::nullopt});
  cs.push_back({"ethernet padding not counted as payload",
                {{Padded(ack.Build(), 6), Len(ack)}},
                {{S::PGTLS_STAT_PKTS_PASSED, 1}},
                {},
                abi::PGTLS_FLOW_HANDSHAKE});
  cs.push_back({"ipv4 and tcp options",
                {{C2S().Ipv4Options(8).TcpOptions(12).Payload(20).Build(), 14 + 28 + 32 + 20}},
                {{S::PGTLS_STAT_PKTS_PASSED, 1}},
                {},
                abi::PGTLS_FLOW_HANDSHAKE,
                20});
  cs.push_back({"ipv6 syn and data",
                {{v6().Flags(t::kTcpSyn).Build(), 14 + 40 + 20},
                 {v6().Payload(50).Build(), 14 + 40 + 20 + 50}},
                {{S::PGTLS_STAT_PKTS_PASSED, 2}, {S::PGTLS_STAT_FLOWS_CREATED, 1}},
                {},
                std::nullopt});
  cs.push_back(
      {"ipv6 extension headers walked",
       {{v6().Ipv6Ext(0, 8).Ipv6Ext(43, 24).Ipv6Ext(44, 8).Ipv6Ext(60, 16).Payload(7).Build(),
         14 + 40 + 56 + 20 + 7}},
       {{S::PGTLS_STAT_PKTS_PASSED, 1}},
       {},
       std::nullopt});
  cs.push_back({"too many ipv6 extension headers",
                {{v6().Ipv6Ext(0)
                      .Ipv6Ext(60)
                      .Ipv6Ext(60)
                      .Ipv6Ext(60)
                      .Ipv6Ext(60)
                      .Ipv6Ext(60)
                      .Ipv6Ext(60)
                      .Build(),
                  0}},
                {},
                {{D::PGTLS_DROP_IPV6_EXT_LIMIT, 1}},
                std::nullopt});
  cs.push_back({"non-first fragments dropped and counted",
                {{v6().Ipv6Ext(44, 8, 100).Build(), 0}, {C2S().Ipv4FragOffset(100).Build(), 0}},
                {},
                {{D::PGTLS_DROP_FRAGMENT, 2}},
                std::nullopt});
  cs.push_back({"vlan and q-in-q tags",
                {{C2S().Vlan(100).Payload(10).Build(), 14 + 4 + 40 + 10},
                 {C2S().Vlan(100, t::kEth8021AD).Vlan(200).Payload(10).Build(), 14 + 8 + 40 + 10},
                 {C2S().Vlan(1).Vlan(2).Vlan(3).Payload(10).Build(), 0}},  // 3 tags: not parsed
                {{S::PGTLS_STAT_PKTS_PASSED, 2}, {S::PGTLS_STAT_PKTS_IGNORED, 1}},
                {},
                abi::PGTLS_FLOW_HANDSHAKE,
                20});
  cs.push_back({"flow marked done: data skipped, fin and rst headers passed",
                {{syn.Build(), Len(syn)},
                 {data100.Build(), Len(data100)},
                 {data600.Build(), 0, /*mark_done_before=*/true},
                 {srv600.Build(), 0},
                 {ack.Build(), 0},
                 {fin_data.Build(), Hdr(fin_data)},
                 {rst.Build(), Hdr(rst)}},
                {{S::PGTLS_STAT_PKTS_SEEN, 7},
                 {S::PGTLS_STAT_PKTS_PASSED, 4},
                 {S::PGTLS_STAT_PKTS_SKIPPED, 3},
                 {S::PGTLS_STAT_BYTES_SKIPPED, Len(data600) + Len(srv600) + Len(ack) - 3 * 14}},
                {},
                abi::PGTLS_FLOW_DONE,
                100,
                3});
  cs.push_back({"new syn on a done flow starts afresh",
                {{data100.Build(), Len(data100)},
                 {data100.Build(), 0, true},
                 {syn.Build(), Len(syn)},
                 {data100.Build(), Len(data100)}},
                {{S::PGTLS_STAT_FLOWS_CREATED, 2}, {S::PGTLS_STAT_PKTS_SKIPPED, 1}},
                {},
                abi::PGTLS_FLOW_HANDSHAKE,
                100});
  cs.push_back({"mark done before the first packet (evicted entry) is honoured",
                {{data100.Build(), 0, true}},
                {{S::PGTLS_STAT_PKTS_SKIPPED, 1}, {S::PGTLS_STAT_FLOWS_CREATED, 0}},
                {},
                abi::PGTLS_FLOW_DONE,
                0,
                1});

  // ---- Tunnels: the inner connection (kFlow) is found and decided on; the whole outer frame
  // (up to the snap) is what passes, so the parser sees the tunnel too. ----
  const auto tun = [](abi::pgtls_tunnel type) { return static_cast<S>(abi::TunnelStat(type)); };
  const auto whole = [](const std::vector<uint8_t>& f) { return static_cast<uint32_t>(f.size()); };
  const auto vx = [](const std::vector<uint8_t>& eth, bool outer6 = false, uint16_t port = 4789) {
    return w::Outer(outer6, 17, w::Udp(port, w::Vxlan(4242, eth)));
  };
  const auto ip = [](const t::TcpFrame& f) { return w::StripEthernet(f.Build()); };
  // An IPv4 header (192.0.2.1 -> .2, protocol 4) in front of an IPv4 packet.
  const auto ipip = [](const std::vector<uint8_t>& p) {
    return w::StripEthernet(w::Outer(false, 4, p));
  };
  const auto v6data = v6().Flags(t::kTcpAck).Payload(40);
  const auto vxsyn = vx(syn.Build());
  const auto vx100_v6 = vx(data100.Build(), true, 8472);
  const auto vx_synack = vx(synack.Build(), false, 8472);
  const auto vx100 = vx(data100.Build(), true, 4789);
  cs.push_back({"vxlan on 4789 and 8472, ipv4 and ipv6 underlay: inner flow passed whole",
                {{vxsyn, whole(vxsyn)},
                 {vx_synack, whole(vx_synack)},
                 {vx100_v6, whole(vx100_v6)},
                 {vx100, whole(vx100)}},
                {{S::PGTLS_STAT_PKTS_SEEN, 4},
                 {S::PGTLS_STAT_PKTS_PASSED, 4},
                 {S::PGTLS_STAT_FLOWS_CREATED, 1},
                 {tun(abi::PGTLS_TUNNEL_VXLAN), 4},
                 {tun(abi::PGTLS_TUNNEL_GRE), 0}},
                {},
                abi::PGTLS_FLOW_HANDSHAKE,
                200});
  const auto gen_eth = w::Outer(false, 17, w::Udp(6081, w::Geneve(7, 0x6558, data100.Build())));
  const auto gen_ip = w::Outer(true, 17, w::Udp(6081, w::Geneve(8, 0x0800, ip(data100), 5)));
  const auto gen_noopt = w::Outer(false, 17, w::Udp(6081, w::Geneve(9, 0x0800, ip(data100), 0)));
  cs.push_back({"geneve with options, ethernet and ip payloads",
                {{gen_eth, whole(gen_eth)}, {gen_ip, whole(gen_ip)}, {gen_noopt, whole(gen_noopt)}},
                {{S::PGTLS_STAT_PKTS_PASSED, 3}, {tun(abi::PGTLS_TUNNEL_GENEVE), 3}},
                {},
                abi::PGTLS_FLOW_HANDSHAKE,
                300});
  {
    Case c{"gre key checksum sequence, ipv4 ipv6 and ethernet (gretap) payloads",
           {},
           {},
           {},
           std::nullopt};
    for (uint32_t flags : {0u, w::kGreC, w::kGreK, w::kGreS, w::kGreC | w::kGreK | w::kGreS}) {
      auto f = w::Outer(false, 47, w::Gre(flags, 0x0800, 0x01020304, ip(data100)));
      c.steps.push_back({f, whole(f)});
    }
    auto g6 = w::Outer(true, 47, w::Gre(w::kGreK, 0x86dd, 9, ip(v6data)));
    auto tap = w::Outer(false, 47, w::Gre(w::kGreK | w::kGreS, 0x6558, 9, data100.Build()));
    c.steps.push_back({g6, whole(g6)});
    c.steps.push_back({tap, whole(tap)});
    c.want_stats = {{S::PGTLS_STAT_PKTS_PASSED, 7}, {tun(abi::PGTLS_TUNNEL_GRE), 7}};
    c.want_state = abi::PGTLS_FLOW_HANDSHAKE;
    c.want_passed_c2s = 600;
    cs.push_back(c);
  }
  const auto e1 = w::Outer(false, 47, w::Erspan1(data100.Build()));
  const auto e2 = w::Outer(false, 47, w::Erspan2(513, data100.Build()));
  const auto e3 = w::Outer(true, 47, w::Erspan3(1023, false, data100.Build()));
  const auto e3sub = w::Outer(true, 47, w::Erspan3(1023, true, data100.Build()));
  const auto e3ip = w::Outer(false, 47, w::Erspan3(5, true, ip(data100), 2));
  cs.push_back({"erspan I, II, III (platform subheader, ip frame type)",
                {{e1, whole(e1)},
                 {e2, whole(e2)},
                 {e3, whole(e3)},
                 {e3sub, whole(e3sub)},
                 {e3ip, whole(e3ip)}},
                {{S::PGTLS_STAT_PKTS_PASSED, 5},
                 {tun(abi::PGTLS_TUNNEL_ERSPAN), 5},
                 {tun(abi::PGTLS_TUNNEL_GRE), 0}},
                {},
                abi::PGTLS_FLOW_HANDSHAKE,
                500});
  const auto ip4in4 = w::Outer(false, 4, ip(data100));
  const auto sit = w::Outer(false, 41, ip(v6data));
  const auto ip6in6 = w::Outer(true, 41, ip(v6data));
  const auto ip4in6 = w::Outer(true, 4, ip(data100));
  cs.push_back({"ipip, sit (ipv6 in ipv4), ipv6 in ipv6, ipv4 in ipv6",
                {{ip4in4, whole(ip4in4)},
                 {sit, whole(sit)},
                 {ip6in6, whole(ip6in6)},
                 {ip4in6, whole(ip4in6)}},
                {{S::PGTLS_STAT_PKTS_PASSED, 4},
                 {S::PGTLS_STAT_FLOWS_CREATED, 2},
                 {tun(abi::PGTLS_TUNNEL_IPIP), 4}},
                {},
                abi::PGTLS_FLOW_HANDSHAKE,
                200});
  const auto qinq = vx(w::Ethernet(ip(data100), false, /*qinq=*/true));
  const auto nested =
      w::Outer(true, 47, w::Gre(w::kGreK, 0x0800, 1, w::StripEthernet(vx(data100.Build()))));
  cs.push_back({"qinq inside vxlan; vxlan inside gre",
                {{qinq, whole(qinq)}, {nested, whole(nested)}},
                {{S::PGTLS_STAT_PKTS_PASSED, 2},
                 {tun(abi::PGTLS_TUNNEL_VXLAN), 2},
                 {tun(abi::PGTLS_TUNNEL_GRE), 1}},
                {},
                abi::PGTLS_FLOW_HANDSHAKE,
                200});
  const auto depth4 = w::Outer(false, 4, ipip(ipip(ipip(ip(data100)))));
  const auto depth5 = w::Outer(false, 4, ipip(ipip(ipip(ipip(ip(data100))))));
  cs.push_back({"four encapsulations pass, a fifth is dropped and counted",
                {{depth4, whole(depth4)}, {depth5, 0}},
                {{S::PGTLS_STAT_PKTS_PASSED, 1},
                 {S::PGTLS_STAT_PKTS_SEEN, 1},
                 {tun(abi::PGTLS_TUNNEL_IPIP), 8}},  // 4 + the 4 stripped before the drop
                {{D::PGTLS_DROP_TUNNEL_TOO_DEEP, 1}},
                abi::PGTLS_FLOW_HANDSHAKE,
                100});
  cs.push_back(
      {"truncated tunnel headers dropped and counted",
       {{Cut(vx(data100.Build()), 14 + 20 + 8 + 4), 0},      // in the VXLAN header
        {Cut(vx(data100.Build()), 14 + 20 + 8 + 8 + 6), 0},  // in the inner Ethernet header
        {Cut(gen_eth, 14 + 20 + 8 + 8 + 4), 0},              // in the GENEVE options
        {Cut(w::Outer(false, 47, w::Gre(w::kGreK, 0x0800, 1, ip(data100))), 14 + 20 + 2), 0},
        {Cut(e3sub, 14 + 40 + 8 + 14), 0}},  // in the ERSPAN III platform subheader
       // The VXLAN layer of the frame cut in its inner Ethernet header was stripped (and
       // counted, as the parser counts it) before the cut was found.
       {{S::PGTLS_STAT_PKTS_SEEN, 0}, {tun(abi::PGTLS_TUNNEL_VXLAN), 1}},
       {{D::PGTLS_DROP_TUNNEL_TRUNCATED, 5}},
       std::nullopt});
  {
    auto long_udp = vx(data100.Build());
    long_udp[14 + 20 + 4] = 0xff;  // UDP length beyond the IP packet
    auto bad_erspan2 = w::Outer(false, 47, w::Erspan2(1, data100.Build(), /*version=*/2));
    cs.push_back(
        {"bad and unsupported tunnel headers, outer fragments",
         {{vx(data100.Build()), whole(vx(data100.Build()))},
          {w::Outer(false, 17, w::Udp(4789, w::Vxlan(1, data100.Build(), 0))), 0},  // no I flag
          {w::Outer(false, 17, w::Udp(6081, w::Geneve(1, 0x6558, data100.Build(), 3, 1))), 0},
          {w::Outer(false, 47, w::Gre(1, 0x0800, 0, ip(data100))), 0},  // GRE version 1
          {bad_erspan2, 0},
          {long_udp, 0},
          {w::Outer(false, 47, w::Gre(0, 0x880b, 0, ip(data100))), 0},                // PPP
          {w::Outer(false, 17, w::Udp(6081, w::Geneve(1, 0x8847, ip(data100)))), 0},  // MPLS
          {w::Outer(false, 47, w::Erspan3(5, false, data100.Build(), 1)), 0},  // frame type 1
          {w::Outer(false, 47, w::Gre(0, 0x0800, 0, ip(data100)), w::kIpv4FlagMf), 0},
          {w::Outer(false, 17, w::Udp(4789, w::Vxlan(1, data100.Build())), w::kIpv4FlagMf), 0},
          {w::Outer(false, 4, ip(data100), 100), 0},    // IPIP, a later fragment
          {w::Outer(false, 17, ip(data100), 100), 0}},  // UDP, a later fragment: no ports
         {{S::PGTLS_STAT_PKTS_PASSED, 1},
          {S::PGTLS_STAT_PKTS_IGNORED, 1},
          {tun(abi::PGTLS_TUNNEL_VXLAN), 1}},
         {{D::PGTLS_DROP_TUNNEL_BAD_HEADER, 5},
          {D::PGTLS_DROP_TUNNEL_UNSUPPORTED, 3},
          {D::PGTLS_DROP_TUNNEL_FRAGMENT, 3}},
         abi::PGTLS_FLOW_HANDSHAKE,
         100});
  }
  cs.push_back({"udp to other ports is not decapsulated",
                {{w::Outer(false, 17, w::Udp(53, w::Vxlan(1, data100.Build()))), 0}},
                {{S::PGTLS_STAT_PKTS_IGNORED, 1}, {tun(abi::PGTLS_TUNNEL_VXLAN), 0}},
                {},
                std::nullopt});
  {
    const auto vx600 = vx(data600.Build());
    const auto gen_srv = w::Outer(true, 17, w::Udp(6081, w::Geneve(3, 0x6558, srv600.Build())));
    const auto vxfin = vx(fin_data.Build());
    const auto e2data = w::Outer(false, 47, w::Erspan2(1, data100.Build()));
    cs.push_back(
        {"connection marked final (inner key): wrapped and bare copies stop, fin headers pass",
         {{vxsyn, whole(vxsyn)},
          {e2data, whole(e2data)},
          {vx600, 0, /*mark_done_before=*/true},
          {gen_srv, 0},
          {data100.Build(), 0},  // the original, bare
          {vxfin, static_cast<uint32_t>(vxfin.size() - fin_data.Build().size()) + Hdr(fin_data)}},
         {{S::PGTLS_STAT_PKTS_PASSED, 3}, {S::PGTLS_STAT_PKTS_SKIPPED, 3}},
         {},
         abi::PGTLS_FLOW_DONE,
         100,
         3});
    const uint32_t pre = static_cast<uint32_t>(vx600.size() - data600.Build().size());
    cs.push_back(
        {"per-direction cap counts inner payload of wrapped frames",
         {{vx600, whole(vx600)}, {vx600, pre + Hdr(data600) + 400}, {vx(data100.Build()), 0}},
         {{S::PGTLS_STAT_PKTS_CUT, 1}, {tun(abi::PGTLS_TUNNEL_VXLAN), 3}},
         {{D::PGTLS_DROP_CAP_REACHED, 1}},
         abi::PGTLS_FLOW_HANDSHAKE,
         kCap});
  }
  return cs;
}

struct SkelDeleter {
  void operator()(capture_bpf* s) const { capture_bpf__destroy(s); }
};

class BpfProgTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (CAP_BPF + CAP_NET_ADMIN)";
    skel_.reset(capture_bpf__open());
    ASSERT_TRUE(skel_) << "capture_bpf__open: " << errno;
    ASSERT_EQ(skel_->rodata->cfg_abi_version, PGTLS_ABI_VERSION);
    skel_->rodata->cfg_ports[0] = 5432;
    skel_->rodata->cfg_ports[1] = 6432;
    skel_->rodata->cfg_nports = 2;
    skel_->rodata->cfg_per_dir_cap = kCap;
    ASSERT_EQ(bpf_map__set_max_entries(skel_->maps.flows_lru, 1024), 0);
    const int err = capture_bpf__load(skel_.get());
    if (err == -EPERM) GTEST_SKIP() << "BPF load not permitted";
    ASSERT_EQ(err, 0);
  }

  uint32_t Run(const std::vector<uint8_t>& frame) {
    bpf_test_run_opts opts{};
    opts.sz = sizeof(opts);
    opts.data_in = frame.data();
    opts.data_size_in = static_cast<uint32_t>(frame.size());
    opts.repeat = 1;
    const int err = bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.pgtls_capture), &opts);
    EXPECT_EQ(err, 0) << "bpf_prog_test_run_opts errno " << errno;
    return opts.retval;
  }

  uint64_t Sum(const bpf_map* map, uint32_t idx) {
    std::vector<uint64_t> v(static_cast<size_t>(libbpf_num_possible_cpus()));
    EXPECT_EQ(bpf_map_lookup_elem(bpf_map__fd(map), &idx, v.data()), 0);
    uint64_t s = 0;
    for (uint64_t x : v) s += x;
    return s;
  }

  std::optional<abi::pgtls_flow_value> Flow(const FlowTuple& f) {
    const abi::pgtls_flow_key key = BpfSource::MakeKey(f);
    abi::pgtls_flow_value v{};
    if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.flows_lru), &key, &v) != 0) return {};
    return v;
  }

  // What BpfSource::MarkDone does, on this test's own skeleton.
  void MarkDone(const FlowTuple& f) {
    const abi::pgtls_flow_key key = BpfSource::MakeKey(f);
    abi::pgtls_flow_value v = Flow(f).value_or(abi::pgtls_flow_value{});
    v.state = abi::PGTLS_FLOW_DONE;
    ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.flows_lru), &key, &v, BPF_ANY), 0);
  }

  std::unique_ptr<capture_bpf, SkelDeleter> skel_;
};

TEST_P(BpfProgTest, Frames) {
  const Case& c = GetParam();
  for (size_t i = 0; i < c.steps.size(); ++i) {
    SCOPED_TRACE("step " + std::to_string(i));
    if (c.steps[i].mark_done_before) MarkDone(kFlow);
    EXPECT_EQ(Run(c.steps[i].frame), c.steps[i].want_ret);
  }
  for (const auto& [idx, want] : c.want_stats) {
    EXPECT_EQ(Sum(skel_->maps.stats_pcpu, idx), want) << "stat " << idx;
  }
  for (uint32_t r = 0; r < abi::kNumDropReasons; ++r) {
    const auto it = c.want_drops.find(static_cast<abi::pgtls_drop_reason>(r));
    const uint64_t want = it == c.want_drops.end() ? 0 : it->second;
    EXPECT_EQ(Sum(skel_->maps.drops_pcpu, r), want)
        << "drop " << abi::ToString(static_cast<abi::pgtls_drop_reason>(r));
  }
  // Both directions name the same entry.
  const auto fwd = Flow(kFlow);
  const auto rev = Flow(FlowTuple::From(kServer, 5432, kClient, kClientPort));
  EXPECT_EQ(fwd.has_value(), rev.has_value());
  if (!c.want_state) return;
  ASSERT_TRUE(fwd.has_value());
  EXPECT_EQ(fwd->state, *c.want_state);
  // 10.0.0.1:40000 is the "lo" endpoint, so client -> server is PGTLS_DIR_LO_TO_HI.
  EXPECT_EQ(fwd->passed_payload[abi::PGTLS_DIR_LO_TO_HI], c.want_passed_c2s);
  EXPECT_EQ(fwd->skipped_packets, c.want_skipped);
}

INSTANTIATE_TEST_SUITE_P(Table, BpfProgTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& p) {
                           std::string n;
                           for (char ch : p.param.name) {
                             n += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
                           }
                           return n;
                         });

// The decapsulation ports come from the same configuration as the parser's (--vxlan-ports,
// --geneve-ports -> EbpfConfig -> bpf_load::Configure -> .rodata).
TEST(BpfDecapPortsTest, ConfiguredPortsOnly) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (CAP_BPF + CAP_NET_ADMIN)";
  std::unique_ptr<capture_bpf, SkelDeleter> skel(capture_bpf__open());
  ASSERT_TRUE(skel);
  pgtlsmon::capture::EbpfConfig cfg;
  cfg.vxlan_ports = {9999};
  cfg.geneve_ports = {};
  ASSERT_TRUE(pgtlsmon::capture::bpf_load::Configure(skel->rodata, cfg).ok());
  ASSERT_EQ(capture_bpf__load(skel.get()), 0);
  const auto inner = C2S().Flags(t::kTcpAck).Payload(10).Build();
  const auto run = [&](const std::vector<uint8_t>& frame) {
    bpf_test_run_opts opts{};
    opts.sz = sizeof(opts);
    opts.data_in = frame.data();
    opts.data_size_in = static_cast<uint32_t>(frame.size());
    opts.repeat = 1;
    EXPECT_EQ(bpf_prog_test_run_opts(bpf_program__fd(skel->progs.pgtls_capture), &opts), 0);
    return opts.retval;
  };
  const auto on9999 = w::Outer(false, 17, w::Udp(9999, w::Vxlan(1, inner)));
  EXPECT_EQ(run(on9999), on9999.size());
  EXPECT_EQ(run(w::Outer(false, 17, w::Udp(4789, w::Vxlan(1, inner)))), 0u);
  EXPECT_EQ(run(w::Outer(false, 17, w::Udp(6081, w::Geneve(1, 0x6558, inner)))), 0u);
  pgtlsmon::capture::EbpfConfig too_many;
  too_many.vxlan_ports.assign(PGTLS_MAX_PORTS + 1, 4789);
  EXPECT_FALSE(pgtlsmon::capture::bpf_load::CheckConfig(too_many).ok());
}

}  // namespace
