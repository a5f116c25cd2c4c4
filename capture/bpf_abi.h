// capture/bpf_abi.h: the C++ half of bpf/pgtls_abi.h. The shared header is included inside
// namespace pgtlsmon::capture::abi and its layout re-checked here, so the kernel and user space
// cannot drift apart silently (the C side has matching _Static_asserts).
#pragma once

#include <linux/types.h>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace pgtlsmon::capture::abi {
#include "bpf/pgtls_abi.h"  // NOLINT(bugprone-suspicious-include): the ABI, wrapped in a namespace

static_assert(std::is_trivially_copyable_v<pgtls_flow_key>);
static_assert(std::is_trivially_copyable_v<pgtls_flow_value>);
static_assert(sizeof(pgtls_flow_key) == 36);
static_assert(offsetof(pgtls_flow_key, addr_hi) == 16);
static_assert(offsetof(pgtls_flow_key, port_lo) == 32);
static_assert(offsetof(pgtls_flow_key, port_hi) == 34);
static_assert(sizeof(pgtls_flow_value) == 48);
static_assert(offsetof(pgtls_flow_value, passed_payload) == 8);
static_assert(offsetof(pgtls_flow_value, capped_packets) == 24);
static_assert(offsetof(pgtls_flow_value, skipped_packets) == 32);
static_assert(offsetof(pgtls_flow_value, skipped_bytes) == 40);
static_assert(PGTLS_STAT_MAX == 14);
static_assert(PGTLS_DROP_MAX == 11);
static_assert(PGTLS_TUNNEL_MAX == 5);
static_assert(std::is_trivially_copyable_v<pgtls_pkt_event>);
static_assert(sizeof(pgtls_pkt_event) == 24);
static_assert(offsetof(pgtls_pkt_event, ifindex) == 8);
static_assert(offsetof(pgtls_pkt_event, len) == 12);
static_assert(offsetof(pgtls_pkt_event, caplen) == 16);
static_assert(offsetof(pgtls_pkt_event, protocol) == 20);
static_assert(offsetof(pgtls_pkt_event, flags) == 22);

inline constexpr size_t kNumStats = PGTLS_STAT_MAX;
inline constexpr size_t kNumDropReasons = PGTLS_DROP_MAX;
inline constexpr size_t kNumTunnels = PGTLS_TUNNEL_MAX;

// The stats_pcpu slot counting packets decapsulated from tunnel type `t`.
constexpr uint32_t TunnelStat(pgtls_tunnel t) {
  return static_cast<uint32_t>(PGTLS_STAT_TUNNEL_FIRST) + static_cast<uint32_t>(t);
}

// The `type` label of pgtlsmon_capture_tunnel_packets_total: the parser's TunnelTypeName.
constexpr std::string_view ToString(pgtls_tunnel t) {
  switch (t) {
    case PGTLS_TUNNEL_VXLAN:
      return "vxlan";
    case PGTLS_TUNNEL_GENEVE:
      return "geneve";
    case PGTLS_TUNNEL_GRE:
      return "gre";
    case PGTLS_TUNNEL_ERSPAN:
      return "erspan";
    case PGTLS_TUNNEL_IPIP:
      return "ipip";
    case PGTLS_TUNNEL_MAX:
      break;
  }
  return "unknown";
}

// The `reason` label of pgtlsmon_capture_drops_total for each kernel drop reason.
constexpr std::string_view ToString(pgtls_drop_reason r) {
  switch (r) {
    case PGTLS_DROP_CAP_REACHED:
      return "cap_reached";
    case PGTLS_DROP_MAP_FULL:
      return "flow_map_full";
    case PGTLS_DROP_TRUNCATED_HEADER:
      return "truncated_header";
    case PGTLS_DROP_IPV6_EXT_LIMIT:
      return "ipv6_ext_limit";
    case PGTLS_DROP_FRAGMENT:
      return "ip_fragment";
    case PGTLS_DROP_RINGBUF_FULL:
      return "ring_full";  // the same label as the socket filter's full TPACKET ring
    case PGTLS_DROP_TUNNEL_TOO_DEEP:
      return "tunnel_too_deep";
    case PGTLS_DROP_TUNNEL_TRUNCATED:
      return "tunnel_truncated";
    case PGTLS_DROP_TUNNEL_BAD_HEADER:
      return "tunnel_bad_header";
    case PGTLS_DROP_TUNNEL_UNSUPPORTED:
      return "tunnel_unsupported_protocol";
    case PGTLS_DROP_TUNNEL_FRAGMENT:
      return "tunnel_fragment";
    case PGTLS_DROP_MAX:
      break;
  }
  return "unknown";
}

constexpr std::string_view ToString(pgtls_flow_state s) {
  return s == PGTLS_FLOW_DONE ? "done" : "handshake";
}

}  // namespace pgtlsmon::capture::abi
