// tests/bpf/bpf_tc_prog_test.cc: the TC attach point (bpf/capture_tc.bpf.c) run on crafted frames
// with BPF_PROG_TEST_RUN. For SCHED_CLS programs the kernel builds the skb on the namespace's lo
// from the whole Ethernet frame (skb->len = frame length, ifindex 1). Each case: frames in, the
// verdict (always TC_ACT_UNSPEC: the program never changes a packet's fate), the ring buffer
// records out (ring_buffer__consume), counters. Needs root; skipped otherwise.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "capture/bpf_abi.h"
#include "capture/bpf_source.h"
#include "capture_tc.skel.h"
#include "tests/testing/packet_builder.h"
#include "tests/testing/tunnel_frames.h"

namespace {

using pgtlsmon::capture::BpfSource;
using pgtlsmon::capture::FlowTuple;
namespace abi = pgtlsmon::capture::abi;
namespace t = pgtlsmon::testing;
namespace w = pgtlsmon::testing::tunnel;

constexpr uint32_t kCap = 1000;
constexpr uint32_t kTcActUnspec = 0xffffffffu;  // TC_ACT_UNSPEC (-1) as the u32 retval
constexpr t::Ipv4Addr kClient{10, 0, 0, 1};
constexpr t::Ipv4Addr kServer{10, 0, 0, 2};
const FlowTuple kFlow = FlowTuple::From(kClient, 40000, kServer, 5432);

t::TcpFrame C2S() { return t::TcpFrame{}.Ipv4(kClient, kServer).Ports(40000, 5432); }
t::TcpFrame S2C() { return t::TcpFrame{}.Ipv4(kServer, kClient).Ports(5432, 40000); }

struct Record {
  abi::pgtls_pkt_event ev;
  std::vector<uint8_t> data;
};

struct SkelDeleter {
  void operator()(capture_tc_bpf* s) const { capture_tc_bpf__destroy(s); }
};
struct RingDeleter {
  void operator()(ring_buffer* r) const { ring_buffer__free(r); }
};

class BpfTcProgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (CAP_BPF + CAP_PERFMON + CAP_NET_ADMIN)";
    skel_.reset(capture_tc_bpf__open());
    ASSERT_TRUE(skel_) << "capture_tc_bpf__open: " << errno;
    ASSERT_EQ(skel_->rodata->cfg_abi_version, PGTLS_ABI_VERSION);
    skel_->rodata->cfg_per_dir_cap = kCap;
    ASSERT_EQ(bpf_map__set_max_entries(skel_->maps.flows_lru, 1024), 0);
    ASSERT_EQ(bpf_map__set_max_entries(skel_->maps.scratch,
                                       static_cast<uint32_t>(libbpf_num_possible_cpus())),
              0);
    ASSERT_EQ(bpf_map__set_max_entries(skel_->maps.events, 1u << 20), 0);
    const int err = capture_tc_bpf__load(skel_.get());
    if (err == -EPERM) GTEST_SKIP() << "BPF load not permitted";
    ASSERT_EQ(err, 0);
    ring_.reset(ring_buffer__new(bpf_map__fd(skel_->maps.events), &BpfTcProgTest::OnRecord,
                                 &records_, nullptr));
    ASSERT_TRUE(ring_);
  }

  static int OnRecord(void* ctx, void* data, size_t size) {
    auto* out = static_cast<std::vector<Record>*>(ctx);
    // libbpf hands the record over as void* and a size: view it as bytes once.
    const std::span<const uint8_t> bytes(static_cast<const uint8_t*>(data), size);
    Record r{};
    EXPECT_GE(size, sizeof(r.ev));
    if (bytes.size() < sizeof(r.ev)) return 0;
    std::memcpy(&r.ev, bytes.data(), sizeof(r.ev));
    EXPECT_EQ(size, sizeof(r.ev) + r.ev.caplen);
    const auto payload = bytes.subspan(sizeof(r.ev));
    const auto frame = payload.first(std::min<size_t>(r.ev.caplen, payload.size()));
    r.data.assign(frame.begin(), frame.end());
    out->push_back(std::move(r));
    return 0;
  }

  uint32_t Run(const std::vector<uint8_t>& frame, bool egress = false, int repeat = 1,
               uint32_t* ns = nullptr) {
    bpf_test_run_opts opts{};
    opts.sz = sizeof(opts);
    opts.data_in = frame.data();
    opts.data_size_in = static_cast<uint32_t>(frame.size());
    opts.repeat = repeat;
    const int fd =
        bpf_program__fd(egress ? skel_->progs.pgtls_tc_egress : skel_->progs.pgtls_tc_ingress);
    EXPECT_EQ(bpf_prog_test_run_opts(fd, &opts), 0) << "errno " << errno;
    if (ns != nullptr) *ns = opts.duration;
    return opts.retval;
  }

  std::vector<Record> Drain() {
    records_.clear();
    EXPECT_GE(ring_buffer__consume(ring_.get()), 0);
    return records_;
  }

  uint64_t Sum(const bpf_map* map, uint32_t idx) {
    std::vector<uint64_t> v(static_cast<size_t>(libbpf_num_possible_cpus()));
    EXPECT_EQ(bpf_map_lookup_elem(bpf_map__fd(map), &idx, v.data()), 0);
    uint64_t s = 0;
    for (uint64_t x : v) s += x;
    return s;
  }

  void MarkDone() {
    ASSERT_TRUE(
        pgtlsmon::capture::bpf_maps::MarkDone(bpf_map__fd(skel_->maps.flows_lru), kFlow).ok());
  }

  std::unique_ptr<capture_tc_bpf, SkelDeleter> skel_;
  std::unique_ptr<ring_buffer, RingDeleter> ring_;
  std::vector<Record> records_;
};

TEST_F(BpfTcProgTest, HandshakeFramesCopiedWholeIntoTheRing) {
  const auto syn = C2S().Flags(t::kTcpSyn).Build();
  const auto data = C2S().Flags(t::kTcpPsh | t::kTcpAck).Payload(100).Build();
  EXPECT_EQ(Run(syn), kTcActUnspec);
  EXPECT_EQ(Run(data), kTcActUnspec);
  const auto recs = Drain();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].data, syn);
  EXPECT_EQ(recs[1].data, data);
  EXPECT_EQ(recs[1].ev.len, data.size());
  EXPECT_EQ(recs[1].ev.caplen, data.size());
  EXPECT_EQ(recs[1].ev.ifindex, 1u);  // BPF_PROG_TEST_RUN runs on lo
  EXPECT_EQ(recs[1].ev.protocol, 0x0800);
  EXPECT_EQ(recs[1].ev.flags, 0);
  EXPECT_GT(recs[1].ev.ts_ns, 0u);
  EXPECT_EQ(Sum(skel_->maps.stats_pcpu, abi::PGTLS_STAT_PKTS_PASSED), 2u);
  EXPECT_EQ(Sum(skel_->maps.stats_pcpu, abi::PGTLS_STAT_FLOWS_CREATED), 1u);
}

TEST_F(BpfTcProgTest, OtherTrafficNotCopiedButPassedOn) {
  EXPECT_EQ(Run(C2S().Ports(40000, 80).Payload(10).Build()), kTcActUnspec);
  auto arp = C2S().Build();
  arp[12] = 0x08;
  arp[13] = 0x06;
  EXPECT_EQ(Run(arp), kTcActUnspec);
  EXPECT_TRUE(Drain().empty());
  EXPECT_EQ(Sum(skel_->maps.stats_pcpu, abi::PGTLS_STAT_PKTS_IGNORED), 2u);
}

TEST_F(BpfTcProgTest, CapCutsThenDrops) {
  const auto big = C2S().Flags(t::kTcpAck).Payload(600);
  EXPECT_EQ(Run(big.Build()), kTcActUnspec);
  EXPECT_EQ(Run(big.Build()), kTcActUnspec);  // cut at the cap: 400 of 600
  EXPECT_EQ(Run(big.Build()), kTcActUnspec);  // cap reached: nothing
  EXPECT_EQ(Run(S2C().Flags(t::kTcpAck).Payload(600).Build()), kTcActUnspec);  // own cap
  const auto recs = Drain();
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[1].ev.caplen, big.HeaderLen() + 400);
  EXPECT_EQ(recs[1].ev.len, big.Build().size());
  EXPECT_EQ(Sum(skel_->maps.stats_pcpu, abi::PGTLS_STAT_PKTS_CUT), 1u);
  EXPECT_EQ(Sum(skel_->maps.drops_pcpu, abi::PGTLS_DROP_CAP_REACHED), 1u);
}

TEST_F(BpfTcProgTest, DoneFlowSkippedExceptControlHeaders) {
  EXPECT_EQ(Run(C2S().Flags(t::kTcpSyn).Build()), kTcActUnspec);
  MarkDone();
  const auto data = C2S().Flags(t::kTcpAck).Payload(500).Build();
  EXPECT_EQ(Run(data), kTcActUnspec);
  EXPECT_EQ(Run(S2C().Flags(t::kTcpAck).Payload(500).Build()), kTcActUnspec);
  const auto fin = C2S().Flags(t::kTcpFin | t::kTcpAck).Payload(30);
  EXPECT_EQ(Run(fin.Build()), kTcActUnspec);
  const auto recs = Drain();
  ASSERT_EQ(recs.size(), 2u);  // the SYN, then the FIN's headers
  EXPECT_EQ(recs[1].ev.caplen, fin.HeaderLen());
  EXPECT_EQ(Sum(skel_->maps.stats_pcpu, abi::PGTLS_STAT_PKTS_SKIPPED), 2u);
  EXPECT_EQ(Sum(skel_->maps.stats_pcpu, abi::PGTLS_STAT_BYTES_SKIPPED), 2 * data.size());
  auto v = pgtlsmon::capture::bpf_maps::LookupFlow(bpf_map__fd(skel_->maps.flows_lru), kFlow);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->state, abi::PGTLS_FLOW_DONE);
  EXPECT_EQ(v->skipped_packets, 2u);
}

TEST_F(BpfTcProgTest, EgressOnLoopbackIgnoredIngressCopyKept) {
  const auto data = C2S().Flags(t::kTcpAck).Payload(50).Build();
  EXPECT_EQ(Run(data, /*egress=*/true), kTcActUnspec);
  EXPECT_TRUE(Drain().empty());
  EXPECT_EQ(Sum(skel_->maps.stats_pcpu, abi::PGTLS_STAT_PKTS_SEEN), 0u);
}

TEST_F(BpfTcProgTest, FullRingCountedAsDrop) {
  // A 16 KiB ring, 3 KiB records (BPF_PROG_TEST_RUN takes at most a page): the ring fills up;
  // every loss is counted, none is silent.
  const auto big = C2S().Flags(t::kTcpAck).Payload(3000).Build();
  skel_.reset();
  ring_.reset();
  skel_.reset(capture_tc_bpf__open());
  ASSERT_TRUE(skel_);
  skel_->rodata->cfg_per_dir_cap = 1u << 24;
  ASSERT_EQ(bpf_map__set_max_entries(skel_->maps.scratch,
                                     static_cast<uint32_t>(libbpf_num_possible_cpus())),
            0);
  ASSERT_EQ(bpf_map__set_max_entries(skel_->maps.events, 16384), 0);
  ASSERT_EQ(capture_tc_bpf__load(skel_.get()), 0);
  ring_.reset(ring_buffer__new(bpf_map__fd(skel_->maps.events), &BpfTcProgTest::OnRecord, &records_,
                               nullptr));
  for (int i = 0; i < 40; ++i) EXPECT_EQ(Run(big), kTcActUnspec);
  const auto recs = Drain();
  const uint64_t dropped = Sum(skel_->maps.drops_pcpu, abi::PGTLS_DROP_RINGBUF_FULL);
  EXPECT_GT(dropped, 0u);
  EXPECT_EQ(recs.size() + dropped, 40u);
  EXPECT_EQ(Sum(skel_->maps.stats_pcpu, abi::PGTLS_STAT_PKTS_PASSED), 40u);
}

// Mirrored/tunnelled copies: the ring gets the whole outer frame (the parser decapsulates it
// again and records the tunnel), the decision is the inner connection's, and once that connection
// is final its wrapped copies stop too.
TEST_F(BpfTcProgTest, WrappedFramesCopiedWholeUntilTheInnerFlowIsDone) {
  const auto syn = C2S().Flags(t::kTcpSyn).Build();
  const auto data = C2S().Flags(t::kTcpPsh | t::kTcpAck).Payload(100).Build();
  const auto vx_syn = w::Outer(false, 17, w::Udp(4789, w::Vxlan(7, syn)));
  const auto gre =
      w::Outer(true, 47, w::Gre(w::kGreK | w::kGreC, 0x0800, 5, w::StripEthernet(data)));
  const auto erspan = w::Outer(false, 47, w::Erspan3(9, true, data));
  const auto ipip = w::Outer(false, 4, w::StripEthernet(data));
  for (const auto* f : {&vx_syn, &gre, &erspan, &ipip}) EXPECT_EQ(Run(*f), kTcActUnspec);
  auto recs = Drain();
  ASSERT_EQ(recs.size(), 4u);
  EXPECT_EQ(recs[0].data, vx_syn);
  EXPECT_EQ(recs[1].data, gre);
  EXPECT_EQ(recs[1].ev.protocol, 0x86dd);  // the outer frame's
  EXPECT_EQ(recs[2].data, erspan);
  EXPECT_EQ(recs[3].data, ipip);
  EXPECT_EQ(Sum(skel_->maps.stats_pcpu, abi::TunnelStat(abi::PGTLS_TUNNEL_VXLAN)), 1u);
  EXPECT_EQ(Sum(skel_->maps.stats_pcpu, abi::TunnelStat(abi::PGTLS_TUNNEL_GRE)), 1u);
  EXPECT_EQ(Sum(skel_->maps.stats_pcpu, abi::TunnelStat(abi::PGTLS_TUNNEL_ERSPAN)), 1u);
  EXPECT_EQ(Sum(skel_->maps.stats_pcpu, abi::TunnelStat(abi::PGTLS_TUNNEL_IPIP)), 1u);
  auto v = pgtlsmon::capture::bpf_maps::LookupFlow(bpf_map__fd(skel_->maps.flows_lru), kFlow);
  ASSERT_TRUE(v.ok());  // keyed by the inner connection
  EXPECT_EQ(v->passed_payload[abi::PGTLS_DIR_LO_TO_HI], 300u);

  MarkDone();
  const auto bulk = C2S().Flags(t::kTcpAck).Payload(900).Build();
  const auto vx_bulk = w::Outer(false, 17, w::Udp(8472, w::Vxlan(7, bulk)));
  const auto fin = C2S().Flags(t::kTcpFin | t::kTcpAck).Payload(30);
  const auto vx_fin = w::Outer(false, 17, w::Udp(4789, w::Vxlan(7, fin.Build())));
  EXPECT_EQ(Run(vx_bulk), kTcActUnspec);
  EXPECT_EQ(Run(w::Outer(false, 47, w::Erspan2(1, bulk))), kTcActUnspec);
  EXPECT_EQ(Run(vx_fin), kTcActUnspec);
  recs = Drain();
  ASSERT_EQ(recs.size(), 1u);  // only the FIN, its headers: outer + inner up to TCP
  const size_t fin_pre = vx_fin.size() - fin.Build().size();
  EXPECT_EQ(recs[0].ev.caplen, fin_pre + fin.HeaderLen());
  EXPECT_EQ(recs[0].data,
            std::vector<uint8_t>(vx_fin.begin(),
                                 vx_fin.begin() + static_cast<std::ptrdiff_t>(recs[0].ev.caplen)));
  EXPECT_EQ(Sum(skel_->maps.stats_pcpu, abi::PGTLS_STAT_PKTS_SKIPPED), 2u);
  EXPECT_EQ(Sum(skel_->maps.stats_pcpu, abi::PGTLS_STAT_BYTES_SKIPPED),
            vx_bulk.size() + w::Outer(false, 47, w::Erspan2(1, bulk)).size());
}

TEST_F(BpfTcProgTest, TooDeepAndTruncatedTunnelsCounted) {
  const auto data = C2S().Flags(t::kTcpAck).Payload(10).Build();
  auto ip = w::StripEthernet(data);
  for (int i = 0; i < 4; ++i) ip = w::StripEthernet(w::Outer(false, 4, ip));
  const auto deep = w::Outer(false, 4, ip);  // 5 encapsulations
  auto cut = w::Outer(false, 17, w::Udp(6081, w::Geneve(1, 0x6558, data, 20)));
  cut.resize(14 + 20 + 8 + 8 + 16);  // the options run past the frame
  EXPECT_EQ(Run(deep), kTcActUnspec);
  EXPECT_EQ(Run(cut), kTcActUnspec);
  EXPECT_TRUE(Drain().empty());
  EXPECT_EQ(Sum(skel_->maps.drops_pcpu, abi::PGTLS_DROP_TUNNEL_TOO_DEEP), 1u);
  EXPECT_EQ(Sum(skel_->maps.drops_pcpu, abi::PGTLS_DROP_TUNNEL_TRUNCATED), 1u);
}

}  // namespace
