// tests/bpf/bpf_source_live_test.cc: BpfSource on lo with a real TCP connection on 127.0.0.1.
// A small "handshake" (8-byte SSLRequest, 'S', a few KB each way) must arrive whole and exactly
// once; after MarkDone only header-only FIN/RST frames may arrive and the skipped counters grow.
// A second connection checks the per-direction cap on a large (GSO-sized on lo) write.
// Needs root (CAP_BPF, CAP_NET_ADMIN, CAP_NET_RAW); skipped otherwise.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "capture/bpf_source.h"

namespace {

using pgtlsmon::capture::BpfConfig;
using pgtlsmon::capture::BpfSource;
using pgtlsmon::capture::BpfStats;
using pgtlsmon::capture::FlowTuple;
using pgtlsmon::capture::RawPacket;
namespace abi = pgtlsmon::capture::abi;

class Sock {
 public:
  explicit Sock(int fd = -1) : fd_(fd) {}
  ~Sock() { Close(); }
  Sock(const Sock&) = delete;
  Sock& operator=(const Sock&) = delete;
  int fd() const { return fd_; }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

uint16_t LocalPort(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

void SendAll(int fd, size_t n, uint8_t fill) {
  std::vector<uint8_t> buf(n, fill);
  size_t off = 0;
  while (off < n) {
    const auto rest = std::span<const uint8_t>(buf).subspan(off);
    const ssize_t w = send(fd, rest.data(), rest.size(), 0);
    ASSERT_GT(w, 0);
    off += static_cast<size_t>(w);
  }
}

void RecvAll(int fd, size_t n) {
  std::vector<uint8_t> buf(n);
  size_t off = 0;
  while (off < n) {
    const auto rest = std::span<uint8_t>(buf).subspan(off);
    const ssize_t r = recv(fd, rest.data(), rest.size(), 0);
    ASSERT_GT(r, 0);
    off += static_cast<size_t>(r);
  }
}

// The TCP fields of an Ethernet + IPv4 frame from lo.
struct Seen {
  uint16_t sport = 0;
  uint16_t dport = 0;
  uint8_t flags = 0;
  uint32_t payload_wire = 0;  // TCP payload bytes on the wire
  uint32_t payload_cap = 0;   // of which captured
};

bool Decode(const RawPacket& p, Seen* s) {
  const auto d = p.data;
  if (d.size() < 14 + 20 || d[12] != 0x08 || d[13] != 0x00) return false;
  const size_t ihl = static_cast<size_t>(d[14] & 0x0f) * 4;
  const auto tot = static_cast<size_t>((d[16] << 8) | d[17]);
  if (d.size() < 14 + ihl + 20) return false;
  const size_t t = 14 + ihl;
  const size_t doff = static_cast<size_t>(d[t + 12] >> 4) * 4;
  s->sport = static_cast<uint16_t>((d[t] << 8) | d[t + 1]);
  s->dport = static_cast<uint16_t>((d[t + 2] << 8) | d[t + 3]);
  s->flags = d[t + 13];
  const size_t hdr = t + doff;
  s->payload_wire = static_cast<uint32_t>(tot - ihl - doff);
  s->payload_cap = static_cast<uint32_t>(d.size() > hdr ? d.size() - hdr : 0);
  return true;
}

class BpfSourceLiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (CAP_BPF, CAP_NET_ADMIN, CAP_NET_RAW)";
    listener_ = std::make_unique<Sock>(socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
    ASSERT_EQ(bind(listener_->fd(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    ASSERT_EQ(listen(listener_->fd(), 4), 0);
    port_ = LocalPort(listener_->fd());
  }

  std::unique_ptr<BpfSource> Open(uint32_t cap) {
    BpfConfig cfg;
    cfg.interface = "lo";
    cfg.ports = {port_};
    cfg.per_dir_cap = cap;
    cfg.ring_bytes = size_t{4} << 20;
    auto src = BpfSource::Create(cfg);
    EXPECT_TRUE(src.ok()) << src.status();
    return src.ok() ? std::move(*src) : nullptr;
  }

  // Connects a client to the listener; returns {client, server}.
  std::pair<std::unique_ptr<Sock>, std::unique_ptr<Sock>> Connect() {
    auto c = std::make_unique<Sock>(socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port_);
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
    EXPECT_EQ(connect(c->fd(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    auto s = std::make_unique<Sock>(accept(listener_->fd(), nullptr, nullptr));
    return {std::move(c), std::move(s)};
  }

  // Reads frames of the connection whose client port is cport for `ms` milliseconds.
  std::vector<Seen> Drain(BpfSource& src, uint16_t cport, int ms) {
    std::vector<Seen> out;
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    RawPacket p;
    while (std::chrono::steady_clock::now() < until) {
      auto r = src.NextWithTimeout(&p, 20);
      EXPECT_TRUE(r.ok()) << r.status();
      if (!r.ok() || !*r) continue;
      EXPECT_EQ(p.linktype, pgtlsmon::capture::kLinkEthernet);
      EXPECT_LE(p.caplen, p.wire_len);
      Seen s;
      if (Decode(p, &s) && (s.sport == cport || s.dport == cport)) out.push_back(s);
    }
    return out;
  }

  std::unique_ptr<Sock> listener_;
  uint16_t port_ = 0;
};

TEST_F(BpfSourceLiveTest, HandshakeBytesThenOnlyFinAfterMarkDone) {
  auto src = Open(PGTLS_DEFAULT_PER_DIR_CAP);
  ASSERT_NE(src, nullptr);
  auto [client, server] = Connect();
  const uint16_t cport = LocalPort(client->fd());

  SendAll(client->fd(), 8, 0x04);  // SSLRequest-sized
  RecvAll(server->fd(), 8);
  SendAll(server->fd(), 1, 'S');
  RecvAll(client->fd(), 1);
  SendAll(client->fd(), 3000, 0x16);
  RecvAll(server->fd(), 3000);
  SendAll(server->fd(), 4000, 0x16);
  RecvAll(client->fd(), 4000);

  const auto before = Drain(*src, cport, 300);
  uint64_t c2s = 0;
  uint64_t s2c = 0;
  bool syn = false;
  for (const auto& s : before) {
    EXPECT_EQ(s.payload_cap, s.payload_wire) << "handshake frames arrive whole";
    (s.sport == cport ? c2s : s2c) += s.payload_cap;
    syn |= (s.flags & 0x02) != 0;
  }
  EXPECT_TRUE(syn);
  EXPECT_EQ(c2s, 3008u) << "each byte exactly once (lo's outgoing copy is filtered)";
  EXPECT_EQ(s2c, 4001u);

  const FlowTuple flow = FlowTuple::From(std::vector<uint8_t>{127, 0, 0, 1}, cport,
                                         std::vector<uint8_t>{127, 0, 0, 1}, port_);
  ASSERT_TRUE(src->MarkDone(flow).ok());
  auto v = src->LookupFlow(flow);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->state, abi::PGTLS_FLOW_DONE);
  auto st0 = src->Stats();
  ASSERT_TRUE(st0.ok()) << st0.status();

  SendAll(client->fd(), 200000, 0x17);
  RecvAll(server->fd(), 200000);
  SendAll(server->fd(), 50000, 0x17);
  RecvAll(client->fd(), 50000);
  client->Close();
  server->Close();

  const auto after = Drain(*src, cport, 300);
  int fins = 0;
  for (const auto& s : after) {
    EXPECT_NE(s.flags & 0x07, 0) << "only SYN/FIN/RST after MarkDone";
    EXPECT_EQ(s.payload_cap, 0u) << "headers only after MarkDone";
    fins += (s.flags & 0x01) != 0;
  }
  EXPECT_EQ(fins, 2);

  auto st = src->Stats();
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_GT(st->packets_skipped, st0->packets_skipped);
  EXPECT_GE(st->bytes_skipped - st0->bytes_skipped, 250000u);
  EXPECT_EQ(st->ring_drops, 0u);
  auto v2 = src->LookupFlow(flow);
  ASSERT_TRUE(v2.ok());
  EXPECT_GE(v2->skipped_bytes, 250000u);
  std::printf("live: seen %llu pkts/%llu B, passed %llu pkts/%llu B, skipped %llu pkts/%llu B\n",
              static_cast<unsigned long long>(st->packets_seen),
              static_cast<unsigned long long>(st->bytes_seen),
              static_cast<unsigned long long>(st->packets_passed),
              static_cast<unsigned long long>(st->bytes_passed),
              static_cast<unsigned long long>(st->packets_skipped),
              static_cast<unsigned long long>(st->bytes_skipped));
}

TEST_F(BpfSourceLiveTest, LargeWritesAreCutAtTheCap) {
  constexpr uint32_t kCap = 16384 + 5;
  auto src = Open(kCap);
  ASSERT_NE(src, nullptr);
  auto [client, server] = Connect();
  const uint16_t cport = LocalPort(client->fd());
  SendAll(client->fd(), 300000, 0x16);  // lo: ~64 KB segments
  RecvAll(server->fd(), 300000);

  const auto seen = Drain(*src, cport, 300);
  uint64_t captured = 0;
  uint64_t cut_frames = 0;
  for (const auto& s : seen) {
    if (s.sport != cport) continue;
    captured += s.payload_cap;
    cut_frames += s.payload_cap < s.payload_wire;
  }
  EXPECT_EQ(captured, kCap);
  EXPECT_EQ(cut_frames, 1u);
  auto st = src->Stats();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->packets_cut, 1u);
  EXPECT_GE(st->drops[abi::PGTLS_DROP_CAP_REACHED], 1u);
}

TEST(BpfSourceCreate, RejectsBadConfig) {
  BpfConfig cfg;
  cfg.ports = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  EXPECT_EQ(BpfSource::Create(cfg).status().code(), absl::StatusCode::kInvalidArgument);
  cfg.ports = {5432};
  cfg.interface = "pgtls-no-such-if0";
  EXPECT_FALSE(BpfSource::Create(cfg).ok());
}

}  // namespace
