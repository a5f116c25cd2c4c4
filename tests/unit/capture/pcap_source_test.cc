// Tests for capture/pcap_source.h. The live test uses the loopback interface only and is
// skipped without the privilege to capture (CAP_NET_RAW).
#include "capture/pcap_source.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/match.h"

namespace pgtlsmon::capture {
namespace {

using ::testing::HasSubstr;

TEST(BuildPortFilterTest, Forms) {
  const std::vector<uint16_t> none;
  EXPECT_EQ(BuildPortFilter(none), "tcp");
  const std::vector<uint16_t> one = {5432};
  EXPECT_EQ(BuildPortFilter(one), "tcp port 5432");
  const std::vector<uint16_t> two = {5432, 6432};
  EXPECT_EQ(BuildPortFilter(two), "tcp port 5432 or tcp port 6432");
  EXPECT_EQ(BuildPortFilter(one, true), "(tcp port 5432) or (vlan and (tcp port 5432))");
  const std::vector<uint16_t> vxlan = {4789};
  EXPECT_EQ(BuildPortFilter(one, false, vxlan),
            "tcp port 5432 or proto 47 or ip proto 4 or ip proto 41 or ip6 proto 4 or ip6 proto 41 "
            "or udp dst port 4789");
}

TEST(PcapSourceTest, FiltersCompileForLibpcap) {
  const std::vector<uint16_t> two = {5432, 6432};
  // Compile against a dead Ethernet handle: the strings must be valid BPF expressions.
  for (const std::string& f :
       {BuildPortFilter(two), BuildPortFilter({}), BuildPortFilter(two, true),
        BuildPortFilter(two, true, std::vector<uint16_t>{4789, 8472, 6081})}) {
    pcap_t* dead = pcap_open_dead(DLT_EN10MB, 262144);
    bpf_program prog{};
    EXPECT_EQ(pcap_compile(dead, &prog, f.c_str(), 1, PCAP_NETMASK_UNKNOWN), 0) << f;
    pcap_freecode(&prog);
    pcap_close(dead);
  }
}

TEST(PcapSourceTest, UnknownInterfaceIsAnError) {
  LiveOptions opts;
  opts.interface = "pgtls-no-such-if0";
  auto src = PcapSource::OpenLive(opts);
  ASSERT_FALSE(src.ok());
  EXPECT_THAT(std::string(src.status().message()), HasSubstr("pgtls-no-such-if0"));
}

// Captures a UDP datagram this test sends to itself over 127.0.0.1.
TEST(PcapSourceTest, LiveLoopbackCapture) {
  const int sock = socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(sock, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
  ASSERT_EQ(bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t alen = sizeof addr;
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
  ASSERT_EQ(getsockname(sock, reinterpret_cast<sockaddr*>(&addr), &alen), 0);
  const uint16_t port = ntohs(addr.sin_port);

  LiveOptions opts;
  opts.interface = "lo";
  opts.buffer_bytes = 1 << 20;
  opts.poll_timeout_ms = 100;
  opts.filter = "udp port " + std::to_string(port);
  auto src = PcapSource::OpenLive(opts);
  if (!src.ok() && absl::IsPermissionDenied(src.status())) {
    close(sock);
    GTEST_SKIP() << src.status();
  }
  ASSERT_TRUE(src.ok()) << src.status();
  PcapSource& live = **src;
  EXPECT_TRUE(live.live());
  EXPECT_GE(live.selectable_fd(), 0);
  EXPECT_EQ(live.linktype(), 1u);  // Linux lo is Ethernet-framed

  // Nothing sent yet: Next() returns false after its timeout, without ending the source.
  RawPacket pkt;
  auto r = live.NextWithTimeout(&pkt, 0);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(*r);
  EXPECT_FALSE(live.at_end());

  const char kMsg[] = "pgtlsmon-live-test";
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
  ASSERT_EQ(sendto(sock, kMsg, sizeof kMsg - 1, 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr),
            static_cast<ssize_t>(sizeof kMsg - 1));
  bool found = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!found && std::chrono::steady_clock::now() < deadline) {
    r = live.Next(&pkt);
    ASSERT_TRUE(r.ok()) << r.status();
    if (!*r) continue;
    const std::string data(pkt.data.begin(), pkt.data.end());
    found = absl::StrContains(data, kMsg);
    EXPECT_GT(pkt.ts_ns, 0u);
    EXPECT_EQ(pkt.caplen, pkt.data.size());
    EXPECT_GE(pkt.wire_len, pkt.caplen);
  }
  EXPECT_TRUE(found);
  auto stats = live.Stats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_GE(stats->received, 1u);
  close(sock);
}

}  // namespace
}  // namespace pgtlsmon::capture
