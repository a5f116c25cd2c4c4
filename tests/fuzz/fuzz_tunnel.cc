// fuzz_tunnel: DecodeTcpSegment's decapsulation (VXLAN, GENEVE, GRE, ERSPAN, IP in IP).
// Byte 0 picks the link type (Ethernet, IPv4, IPv6, raw by version) in its low 2 bits and the
// tunnel port configuration in the next 2 (the defaults; VXLAN and GENEVE both on 4789; no
// tunnel ports; every default on VXLAN); the rest is the frame. Beyond memory safety, checks
// what the decoder promises: one count per drop, none otherwise; the outermost tunnel is set
// only when a layer was stripped, and no more than kMaxTunnelDepth layers are.
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <span>

#include "parser/packet_decoder.h"
#include "tests/fuzz/fuzz_input.h"
#include "tests/fuzz/segment_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pgtlsmon::parser;
  static constexpr uint32_t kLinks[] = {1 /* Ethernet */, 228 /* IPv4 */, 229 /* IPv6 */,
                                        101 /* raw */};
  static const DecapConfig kConfigs[] = {
      DecapConfig{},
      DecapConfig{{4789}, {4789}},
      DecapConfig{{}, {}},
      DecapConfig{{4789, 8472, 6081}, {}},
  };
  const std::span<const uint8_t> input = pgtlsmon::fuzz::Input(data, size);
  if (input.empty()) return 0;
  const uint32_t link = kLinks[input[0] & 3];
  const DecapConfig& cfg = kConfigs[(input[0] >> 2) & 3];
  const std::span<const uint8_t> frame = input.subspan(1);
  TcpSegment seg;
  ParseStats stats;
  const ParseResult r = DecodeTcpSegment(link, frame, cfg, &seg, &stats);
  const uint64_t layers =
      std::accumulate(stats.tunnel_packets.begin(), stats.tunnel_packets.end(), uint64_t{0});
  if (r == ParseResult::kMalformed ? stats.Total() != 1 : stats.Total() != 0) __builtin_trap();
  if ((seg.tunnel.type != TunnelType::kNone) != (layers > 0)) __builtin_trap();
  if (layers > static_cast<uint64_t>(kMaxTunnelDepth)) __builtin_trap();
  if (stats.tunnel_packets[static_cast<size_t>(TunnelType::kNone)] != 0) __builtin_trap();
  if (r == ParseResult::kOk) pgtlsmon::fuzz::CheckSegmentInFrame(seg, frame);
  return 0;
}
