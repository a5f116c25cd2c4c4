// parser/parse_stats.h: counters of input the parser could not use, by stage and reason.
//
// Exported as pgtlsmon_parse_errors_total{stage,reason}. Both sets are closed.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "parser/events.h"

namespace pgtlsmon::parser {

enum class Stage : uint8_t { kLink, kIp, kTunnel, kTcp, kPostgres, kTls, kCertificate, kCount };

enum class Reason : uint8_t {
  kTruncated,            // the frame or message ends before its headers say it should
  kBadLength,            // a length field that cannot be right
  kBadHeader,            // a header with impossible values (IP version, TCP data offset, ...)
  kUnsupportedLink,      // a link type or ethertype we do not decode
  kIpFragment,           // an IP fragment (not reassembled)
  kUnexpectedSslReply,   // a reply byte to SSLRequest/GSSENCRequest other than S/N/G/E
  kCapExceeded,          // a reassembly or buffer cap was hit
  kHole,                 // a gap in a TCP stream that never filled
  kBadRecord,            // a TLS record with an unknown content type or bad version
  kBadHandshake,         // a handshake message that does not parse
  kBadCertificate,       // a certificate OpenSSL cannot decode
  kUnsupportedProtocol,  // a tunnel carrying a protocol we do not decode (GRE, GENEVE, ERSPAN)
  kTooDeep,              // encapsulations nested deeper than the decoder's cap
  kCount,
};

std::string_view StageName(Stage s);
std::string_view ReasonName(Reason r);

struct ParseStats {
  std::array<std::array<uint64_t, static_cast<size_t>(Reason::kCount)>,
             static_cast<size_t>(Stage::kCount)>
      counts{};
  // Packets decapsulated, by tunnel type (each layer stripped counts once):
  // pgtlsmon_tunnel_packets_total{type}.
  std::array<uint64_t, static_cast<size_t>(TunnelType::kCount)> tunnel_packets{};

  void Add(Stage s, Reason r, uint64_t n = 1) {
    counts[static_cast<size_t>(s)][static_cast<size_t>(r)] += n;
  }
  uint64_t Get(Stage s, Reason r) const {
    return counts[static_cast<size_t>(s)][static_cast<size_t>(r)];
  }
  uint64_t Total() const {
    uint64_t t = 0;
    for (const auto& row : counts)
      for (uint64_t v : row) t += v;
    return t;
  }
  void Merge(const ParseStats& o) {
    for (size_t s = 0; s < counts.size(); ++s)
      for (size_t r = 0; r < counts[s].size(); ++r) counts[s][r] += o.counts[s][r];
    for (size_t t = 0; t < tunnel_packets.size(); ++t) tunnel_packets[t] += o.tunnel_packets[t];
  }
};

}  // namespace pgtlsmon::parser
