// fuzz_flow: the whole pipeline. The input is split into chunks on the marker "FUZZ" (Zeek
// src/fuzzers/FuzzBuffer.h style); each chunk's first byte is a control byte and the rest its
// TCP payload, sent as one segment of a single connection through FlowTracker::OnSegment,
// then Finish().
//   control bit 0: direction (0 client -> server:5432, 1 server -> client)
//   bit 1: FIN after the payload      bit 2: RST instead of data
//   bit 3: skip 1000 bytes of sequence space (a hole)
//   bit 4: resend at the previous segment's sequence number (a retransmission / overlap)
//   bit 5: advance the clock by 20 minutes (past the idle timeout)
// The first byte of the whole input picks the configuration: bit 0 any_port, bit 1 no
// three-way handshake (a mid-stream start), bit 2 live output order, bit 3 tiny caps.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "parser/flow_tracker.h"
#include "parser/packet_decoder.h"
#include "tests/fuzz/fuzz_input.h"

namespace {
using namespace pgtlsmon::parser;

IpAddress V4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  IpAddress ip;
  ip.bytes[0] = a, ip.bytes[1] = b, ip.bytes[2] = c, ip.bytes[3] = d;
  return ip;
}

constexpr std::string_view kMarker = "FUZZ";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> input = pgtlsmon::fuzz::Input(data, size);
  if (input.empty()) return 0;
  const uint8_t mode = input[0];
  FlowTrackerConfig cfg;
  cfg.any_port = (mode & 1) != 0;
  cfg.ordered_output = (mode & 4) == 0;
  if (mode & 8) {
    cfg.max_flows = 2;
    cfg.stream_cap = 64;
    cfg.max_handshake_message = 128;
    cfg.max_startup_message = 64;
  }
  uint64_t records = 0;
  FlowTracker tracker(cfg, [&records](SessionRecord&&) { ++records; });

  const IpAddress client = V4(10, 0, 0, 1);
  const IpAddress server = V4(10, 0, 0, 2);
  const uint16_t cport = 40000;
  const uint16_t sport = 5432;
  uint32_t seq[2] = {1000, 900000};
  uint32_t last_seq[2] = {1000, 900000};
  uint64_t ts = 1700000000ull * 1000000;

  auto send = [&](int dir, uint8_t flags, std::span<const uint8_t> payload, uint32_t at) {
    TcpSegment s;
    s.src = dir == 0 ? client : server;
    s.dst = dir == 0 ? server : client;
    s.sport = dir == 0 ? cport : sport;
    s.dport = dir == 0 ? sport : cport;
    s.seq = at;
    s.ack = seq[1 - dir];
    s.flags = flags;
    s.payload = payload;
    s.payload_wire_len = static_cast<uint32_t>(payload.size());
    tracker.OnSegment(s, ts);
    ts += 1000;
  };

  if ((mode & 2) == 0) {
    send(0, kTcpSyn, {}, seq[0]++);
    send(1, kTcpSyn | kTcpAck, {}, seq[1]++);
    send(0, kTcpAck, {}, seq[0]);
  }

  std::string_view in = pgtlsmon::parser::AsChars(input.subspan(1));
  size_t chunks = 0;
  while (!in.empty() && chunks++ < 4096) {
    const size_t end = in.find(kMarker);
    std::string_view chunk = in.substr(0, end);
    in = end == std::string_view::npos ? std::string_view() : in.substr(end + kMarker.size());
    if (chunk.empty()) continue;
    const auto ctl = static_cast<uint8_t>(chunk[0]);
    const std::span<const uint8_t> payload = pgtlsmon::parser::AsBytes(chunk.substr(1));
    const int dir = ctl & 1;
    if (ctl & 0x20) ts += 20ull * 60 * 1000000;
    if (ctl & 0x08) seq[dir] += 1000;
    if (ctl & 0x04) {
      send(dir, kTcpRst | kTcpAck, {}, seq[dir]);
      continue;
    }
    const uint32_t at = (ctl & 0x10) ? last_seq[dir] : seq[dir];
    last_seq[dir] = at;
    uint8_t flags = kTcpAck | kTcpPsh;
    if (ctl & 0x02) flags |= kTcpFin;
    send(dir, flags, payload, at);
    const uint32_t end_seq = at + static_cast<uint32_t>(payload.size()) + ((ctl & 2) ? 1 : 0);
    if (end_seq - seq[dir] < 0x80000000u) seq[dir] = end_seq;
  }
  tracker.ExpireIdle(ts);
  tracker.Finish();
  if (tracker.stats().records != records) __builtin_trap();
  return 0;
}
