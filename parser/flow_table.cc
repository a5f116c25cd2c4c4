#include "parser/flow_table.h"

#include <random>

namespace pgtlsmon::parser {
namespace {

// Byte-wise (big-endian) order of the addresses, compared as two 64-bit words each.
bool LessEndpoint(const IpAddress& a, uint16_t ap, const IpAddress& b, uint16_t bp) {
  using flow_key_internal::Load64;
  if (a.is_v6 != b.is_v6) return !a.is_v6;
  const uint64_t a0 = __builtin_bswap64(Load64(a.bytes.data()));
  const uint64_t b0 = __builtin_bswap64(Load64(b.bytes.data()));
  if (a0 != b0) return a0 < b0;
  const uint64_t a1 = __builtin_bswap64(Load64(a.bytes.data() + 8));
  const uint64_t b1 = __builtin_bswap64(Load64(b.bytes.data() + 8));
  if (a1 != b1) return a1 < b1;
  return ap < bp;
}

}  // namespace

namespace flow_key_internal {
HashSeed NewHashSeed() {
  std::random_device rd;
  HashSeed s{};
  for (uint64_t& k : s.k) k = (uint64_t{rd()} << 32) ^ rd();
  return s;
}
}  // namespace flow_key_internal

FlowKey MakeFlowKey(const TcpSegment& seg, bool* src_is_lo) {
  FlowKey k;
  const bool lo = LessEndpoint(seg.src, seg.sport, seg.dst, seg.dport);
  if (lo) {
    k.lo_ip = seg.src, k.lo_port = seg.sport, k.hi_ip = seg.dst, k.hi_port = seg.dport;
  } else {
    k.lo_ip = seg.dst, k.lo_port = seg.dport, k.hi_ip = seg.src, k.hi_port = seg.sport;
  }
  if (src_is_lo != nullptr) *src_is_lo = lo;
  return k;
}

std::string_view EvictionReasonName(EvictionReason r) {
  switch (r) {
    case EvictionReason::kTableFull:
      return "table_full";
    case EvictionReason::kIdleTimeout:
      return "idle_timeout";
    case EvictionReason::kCount:
      break;
  }
  return "unknown";
}

}  // namespace pgtlsmon::parser
