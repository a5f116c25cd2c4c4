// tests/bpf/live_source_test.cc: capture::OpenLiveSource and the LiveSource interface on lo,
// for the libpcap and the eBPF socket-filter back ends (the TC back end adds a qdisc, so it is
// tested in a network namespace by netns_e2e.py tc_qdisc, never on the machine's lo): what
// `watch` reads through the interface (kind, counters' source and drop labels, capabilities,
// delivery delay), a real TCP connection's SYN arriving, MarkDone, and RequestStop waking a
// blocked Next(). Root (CAP_BPF, CAP_NET_RAW); skipped otherwise.
#include "capture/live_source.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <span>
#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace pgtlsmon::capture {
namespace {

// A listening socket on 127.0.0.1 and an ephemeral port, closed on destruction.
class Listener {
 public:
  Listener() : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    EXPECT_EQ(listen(fd_, 4), 0);
    socklen_t len = sizeof(a);
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~Listener() { close(fd_); }
  uint16_t port() const { return port_; }
  // Connects to the listener and closes again; returns the client's port.
  uint16_t Touch() const {
    const int c = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port_);
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
    EXPECT_EQ(connect(c, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    socklen_t len = sizeof(a);
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
    getsockname(c, reinterpret_cast<sockaddr*>(&a), &len);
    close(c);
    return ntohs(a.sin_port);
  }

 private:
  int fd_;
  uint16_t port_ = 0;
};

// The TCP ports of an Ethernet/IPv4 frame (lo has an all-zero Ethernet header).
bool Ports(const RawPacket& p, uint16_t* sport, uint16_t* dport) {
  if (p.linktype != kLinkEthernet || p.caplen < 14 + 20 + 4) return false;
  const std::span<const uint8_t> ip = p.data.subspan(14);
  if ((ip[0] >> 4) != 4 || ip[9] != 6) return false;
  const size_t ihl = static_cast<size_t>(ip[0] & 0xf) * 4;
  if (ip.size() < ihl + 4) return false;
  const std::span<const uint8_t> tcp = ip.subspan(ihl);
  *sport = static_cast<uint16_t>(tcp[0] << 8 | tcp[1]);
  *dport = static_cast<uint16_t>(tcp[2] << 8 | tcp[3]);
  return true;
}

// Reads for up to `ms` until a packet of client port `cport` shows up.
bool Sees(LiveSource& src, uint16_t cport, int ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  RawPacket p;
  while (std::chrono::steady_clock::now() < until) {
    auto r = src.NextWithTimeout(&p, 20);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return false;
    uint16_t s = 0;
    uint16_t d = 0;
    if (*r && Ports(p, &s, &d) && (s == cport || d == cport)) return true;
  }
  return false;
}

std::set<std::string> DropLabels(const LiveStats& s) {
  std::set<std::string> out;
  for (const auto& [reason, n] : s.drops) out.insert(reason);
  return out;
}

class LiveSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (CAP_BPF, CAP_NET_RAW)";
  }
  std::unique_ptr<LiveSource> Open(const std::string& backend, std::string* note) {
    LiveSourceConfig cfg;
    cfg.interface = "lo";
    cfg.backend = backend;
    cfg.ports = {listener_.port()};
    cfg.buffer_bytes = size_t{4} << 20;
    auto src = OpenLiveSource(cfg, note);
    EXPECT_TRUE(src.ok()) << src.status();
    return src.ok() ? std::move(*src) : nullptr;
  }
  Listener listener_;
};

TEST_F(LiveSourceTest, Pcap) {
  std::string note;
  auto src = Open("pcap", &note);
  ASSERT_NE(src, nullptr);
  EXPECT_EQ(note, "");
  EXPECT_EQ(src->kind(), "pcap");
  EXPECT_EQ(src->description(), "pcap");
  EXPECT_TRUE(src->caps_to_keep().empty());
  EXPECT_EQ(src->max_delivery_delay_ms(), 50);
  EXPECT_TRUE(Sees(*src, listener_.Touch(), 2000));
  const LiveStats s = src->Counters();
  EXPECT_EQ(s.source, "pcap:lo");
  EXPECT_EQ(DropLabels(s), (std::set<std::string>{"kernel", "interface"}));
  EXPECT_EQ(s.skipped_packets, 0u);
  EXPECT_TRUE(src->MarkDone(FlowTuple{}).ok());  // nothing to tell libpcap
}

TEST_F(LiveSourceTest, EbpfSocketFilter) {
  for (const char* backend : {"ebpf", "auto"}) {
    SCOPED_TRACE(backend);
    std::string note;
    auto src = Open(backend, &note);
    ASSERT_NE(src, nullptr);
    EXPECT_EQ(note, "");  // auto: eBPF loaded, no fallback
    EXPECT_EQ(src->kind(), "ebpf");
    EXPECT_EQ(src->description(), "ebpf (socket)");
    EXPECT_TRUE(src->caps_to_keep().empty());  // the socket filter needs nothing once open
    EXPECT_EQ(src->max_delivery_delay_ms(), 10);
    const uint16_t cport = listener_.Touch();
    EXPECT_TRUE(Sees(*src, cport, 2000));
    const uint8_t lo[4] = {127, 0, 0, 1};
    EXPECT_TRUE(src->MarkDone(FlowTuple::From(lo, cport, lo, listener_.port())).ok());
    const LiveStats s = src->Counters();
    EXPECT_EQ(s.source, "ebpf:lo");
    // The label values pgtlsmon_capture_drops_total{reason} documents for eBPF.
    EXPECT_EQ(DropLabels(s),
              (std::set<std::string>{"cap_reached", "flow_map_full", "truncated_header",
                                     "ipv6_ext_limit", "ip_fragment", "ring_full",
                                     "tunnel_too_deep", "tunnel_truncated", "tunnel_bad_header",
                                     "tunnel_unsupported_protocol", "tunnel_fragment"}));
    // pgtlsmon_capture_tunnel_packets_total{type}: the parser's tunnel type names.
    std::set<std::string> types;
    for (const auto& [type, n] : s.tunnel_packets) types.insert(type);
    EXPECT_EQ(types, (std::set<std::string>{"vxlan", "geneve", "gre", "erspan", "ipip"}));
  }
}

TEST_F(LiveSourceTest, RequestStopEndsABlockedNext) {
  for (const char* backend : {"pcap", "ebpf"}) {
    SCOPED_TRACE(backend);
    std::string note;
    auto src = Open(backend, &note);
    ASSERT_NE(src, nullptr);
    std::thread stopper([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      src->RequestStop();
    });
    const auto t0 = std::chrono::steady_clock::now();
    RawPacket p;
    absl::StatusOr<bool> r = true;
    while (r.ok() && *r) r = src->Next(&p);  // packets of other tests' ports are filtered out
    const auto waited = std::chrono::steady_clock::now() - t0;
    stopper.join();
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_FALSE(*r);
    EXPECT_LT(waited, std::chrono::seconds(2));
  }
}

}  // namespace
}  // namespace pgtlsmon::capture
