// tests/testing/packet_builder.h: builds Ethernet frames carrying TCP over IPv4 or IPv6 (with
// optional 802.1Q/802.1ad tags, IPv4 options, IPv6 extension headers, TCP options) for tests.
// Lengths and checksums are filled in; a test can then cut or corrupt the bytes.
//
//   auto f = pgtlsmon::testing::TcpFrame{}.Ipv4({10, 0, 0, 1}, {10, 0, 0, 2})
//                .Ports(40000, 5432).Flags(kTcpPsh | kTcpAck).Payload(100).Build();
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace pgtlsmon::testing {

inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpPsh = 0x08;
inline constexpr uint8_t kTcpAck = 0x10;

inline constexpr uint16_t kEthIpv4 = 0x0800;
inline constexpr uint16_t kEthIpv6 = 0x86dd;
inline constexpr uint16_t kEth8021Q = 0x8100;
inline constexpr uint16_t kEth8021AD = 0x88a8;

using Ipv4Addr = std::array<uint8_t, 4>;
using Ipv6Addr = std::array<uint8_t, 16>;
using MacAddr = std::array<uint8_t, 6>;

class TcpFrame {
 public:
  TcpFrame& Macs(MacAddr dst, MacAddr src) {
    dst_mac_ = dst;
    src_mac_ = src;
    return *this;
  }
  TcpFrame& Vlan(uint16_t tci, uint16_t tpid = kEth8021Q) {
    vlans_.push_back({tpid, tci});
    return *this;
  }
  TcpFrame& Ipv4(Ipv4Addr src, Ipv4Addr dst) {
    v6_ = false;
    src4_ = src;
    dst4_ = dst;
    return *this;
  }
  TcpFrame& Ipv6(Ipv6Addr src, Ipv6Addr dst) {
    v6_ = true;
    src6_ = src;
    dst6_ = dst;
    return *this;
  }
  // IPv4 options: n bytes (multiple of 4) of NOP.
  TcpFrame& Ipv4Options(size_t n) {
    ip_opts_ = n;
    return *this;
  }
  // IPv4 fragment offset in 8-byte units (non-zero: a non-first fragment).
  TcpFrame& Ipv4FragOffset(uint16_t off) {
    frag_off_ = off;
    return *this;
  }
  // IPv6 extension header of `type` (0 hop-by-hop, 43 routing, 44 fragment, 60 dest opts),
  // total length `len` bytes (multiple of 8; fragment: 8, frag_off in 8-byte units).
  TcpFrame& Ipv6Ext(uint8_t type, size_t len = 8, uint16_t frag_off = 0) {
    exts_.push_back({type, len, frag_off});
    return *this;
  }
  TcpFrame& Ports(uint16_t sport, uint16_t dport) {
    sport_ = sport;
    dport_ = dport;
    return *this;
  }
  TcpFrame& Flags(uint8_t flags) {
    flags_ = flags;
    return *this;
  }
  TcpFrame& Seq(uint32_t seq) {
    seq_ = seq;
    return *this;
  }
  // TCP options: n bytes (multiple of 4) of NOP.
  TcpFrame& TcpOptions(size_t n) {
    tcp_opts_ = n;
    return *this;
  }
  TcpFrame& Payload(size_t n, uint8_t fill = 0xab) {
    payload_.assign(n, fill);
    return *this;
  }
  TcpFrame& Payload(std::span<const uint8_t> p) {
    payload_.assign(p.begin(), p.end());
    return *this;
  }
  // Overrides the IP length field (IPv4 total length / IPv6 payload length) after building.
  TcpFrame& IpLengthOverride(uint16_t v) {
    ip_len_override_ = v;
    has_ip_len_override_ = true;
    return *this;
  }

  // Bytes from the Ethernet header to the end of the TCP header.
  size_t HeaderLen() const {
    size_t n = 14 + 4 * vlans_.size() + (v6_ ? 40 : 20 + ip_opts_) + 20 + tcp_opts_;
    for (const auto& e : exts_) n += e.len;
    return n;
  }

  std::vector<uint8_t> Build() const {
    std::vector<uint8_t> f;
    f.insert(f.end(), dst_mac_.begin(), dst_mac_.end());
    f.insert(f.end(), src_mac_.begin(), src_mac_.end());
    for (const auto& v : vlans_) {
      Put16(f, v.tpid);
      Put16(f, v.tci);
    }
    Put16(f, v6_ ? kEthIpv6 : kEthIpv4);
    const size_t l3 = f.size();
    const size_t tcp_len = 20 + tcp_opts_ + payload_.size();
    if (!v6_) {
      const size_t ihl = 20 + ip_opts_;
      f.push_back(static_cast<uint8_t>(0x40 | (ihl / 4)));
      f.push_back(0);
      Put16(f, has_ip_len_override_ ? ip_len_override_ : static_cast<uint16_t>(ihl + tcp_len));
      Put16(f, 0x1234);     // identification
      Put16(f, frag_off_);  // flags 0, fragment offset
      f.push_back(64);      // TTL
      f.push_back(6);       // TCP
      Put16(f, 0);          // checksum, below
      f.insert(f.end(), src4_.begin(), src4_.end());
      f.insert(f.end(), dst4_.begin(), dst4_.end());
      f.insert(f.end(), ip_opts_, uint8_t{1});  // NOP options
      const uint16_t sum = Checksum(std::span<const uint8_t>(f).subspan(l3, ihl), 0);
      f[l3 + 10] = static_cast<uint8_t>(sum >> 8);
      f[l3 + 11] = static_cast<uint8_t>(sum & 0xff);
    } else {
      size_t ext_len = 0;
      for (const auto& e : exts_) ext_len += e.len;
      Put16(f, 0x6000);
      Put16(f, 0);
      Put16(f, has_ip_len_override_ ? ip_len_override_ : static_cast<uint16_t>(ext_len + tcp_len));
      f.push_back(exts_.empty() ? uint8_t{6} : exts_[0].type);
      f.push_back(64);  // hop limit
      f.insert(f.end(), src6_.begin(), src6_.end());
      f.insert(f.end(), dst6_.begin(), dst6_.end());
      for (size_t i = 0; i < exts_.size(); ++i) {
        const auto& e = exts_[i];
        const uint8_t next = i + 1 < exts_.size() ? exts_[i + 1].type : uint8_t{6};
        const size_t start = f.size();
        f.push_back(next);
        if (e.type == 44) {
          f.push_back(0);
          Put16(f, static_cast<uint16_t>(e.frag_off << 3));
          Put16(f, 0);
          Put16(f, 1);  // identification
        } else {
          f.push_back(static_cast<uint8_t>(e.len / 8 - 1));
          while (f.size() < start + e.len) f.push_back(e.type == 43 ? uint8_t{0} : uint8_t{1});
        }
      }
    }
    const size_t l4 = f.size();
    Put16(f, sport_);
    Put16(f, dport_);
    Put32(f, seq_);
    Put32(f, (flags_ & kTcpAck) != 0 ? 1u : 0u);
    f.push_back(static_cast<uint8_t>(((20 + tcp_opts_) / 4) << 4));
    f.push_back(flags_);
    Put16(f, 65535);  // window
    Put16(f, 0);      // checksum, below
    Put16(f, 0);      // urgent
    f.insert(f.end(), tcp_opts_, uint8_t{1});
    f.insert(f.end(), payload_.begin(), payload_.end());
    // TCP checksum over the pseudo header.
    uint32_t pseudo = 6 + static_cast<uint32_t>(tcp_len);
    std::span<const uint8_t> s(src4_), d(dst4_);
    if (v6_) {
      s = src6_;
      d = dst6_;
    }
    for (size_t i = 0; i + 1 < s.size(); i += 2) {
      pseudo += static_cast<uint32_t>((s[i] << 8) | s[i + 1]);
      pseudo += static_cast<uint32_t>((d[i] << 8) | d[i + 1]);
    }
    const uint16_t tsum = Checksum(std::span<const uint8_t>(f).subspan(l4), pseudo);
    f[l4 + 16] = static_cast<uint8_t>(tsum >> 8);
    f[l4 + 17] = static_cast<uint8_t>(tsum & 0xff);
    return f;
  }

 private:
  struct Tag {
    uint16_t tpid;
    uint16_t tci;
  };
  struct Ext {
    uint8_t type;
    size_t len;
    uint16_t frag_off;
  };

  static void Put16(std::vector<uint8_t>& f, uint16_t v) {
    f.push_back(static_cast<uint8_t>(v >> 8));
    f.push_back(static_cast<uint8_t>(v & 0xff));
  }
  static void Put32(std::vector<uint8_t>& f, uint32_t v) {
    Put16(f, static_cast<uint16_t>(v >> 16));
    Put16(f, static_cast<uint16_t>(v & 0xffff));
  }
  static uint16_t Checksum(std::span<const uint8_t> b, uint32_t sum) {
    for (size_t i = 0; i < b.size(); i += 2) {
      const uint32_t hi = b[i];
      const uint32_t lo = i + 1 < b.size() ? b[i + 1] : 0u;
      sum += (hi << 8) | lo;
    }
    while ((sum >> 16) != 0) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(~sum & 0xffff);
  }

  MacAddr dst_mac_{0x02, 0, 0, 0, 0, 2};
  MacAddr src_mac_{0x02, 0, 0, 0, 0, 1};
  std::vector<Tag> vlans_;
  bool v6_ = false;
  Ipv4Addr src4_{10, 0, 0, 1};
  Ipv4Addr dst4_{10, 0, 0, 2};
  Ipv6Addr src6_{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  Ipv6Addr dst6_{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  size_t ip_opts_ = 0;
  uint16_t frag_off_ = 0;
  std::vector<Ext> exts_;
  uint16_t sport_ = 40000;
  uint16_t dport_ = 5432;
  uint8_t flags_ = kTcpAck;
  uint32_t seq_ = 1;
  size_t tcp_opts_ = 0;
  std::vector<uint8_t> payload_;
  uint16_t ip_len_override_ = 0;
  bool has_ip_len_override_ = false;
};

}  // namespace pgtlsmon::testing
