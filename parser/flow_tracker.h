// parser/flow_tracker.h: the connection table and each connection's handshake state.
//
// TCP segments in (parser/packet_decoder.h), session records out. Pure: no I/O, no clock
// (time is the capture's), no globals. One FlowTracker is single-threaded; shard connections
// over several trackers by FlowKey hash to use more cores.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "parser/events.h"
#include "parser/packet_decoder.h"
#include "parser/parse_stats.h"

namespace pgtlsmon::parser {

class CertificateCache;

struct FlowTrackerConfig {
  std::vector<uint16_t> ports = {5432};  // PostgreSQL ports (ignored when any_port)
  bool any_port = false;                 // recognise PostgreSQL and TLS by content everywhere
  size_t max_flows = 262144;             // connection table cap (then the oldest is evicted)
  uint64_t idle_timeout_us = 600ull * 1000000;  // a connection silent this long is dropped
  size_t stream_cap = 16 * 1024 + 5;     // bytes buffered per direction (one TLS record)
  size_t max_handshake_message = 64 * 1024;
  size_t max_startup_message = 10000;    // PostgreSQL's own MAX_STARTUP_PACKET_LENGTH
  // Records come out in the order of the connections' first packets (replay); otherwise as
  // soon as they are final (live).
  bool ordered_output = true;
};

// A connection's addresses in a canonical order, so both directions find one entry.
struct FlowKey {
  IpAddress lo_ip;
  IpAddress hi_ip;
  uint16_t lo_port = 0;
  uint16_t hi_port = 0;

  friend bool operator==(const FlowKey&, const FlowKey&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const FlowKey& k) {
    return H::combine(std::move(h), k.lo_ip.bytes, k.hi_ip.bytes, k.lo_port, k.hi_port);
  }
};
FlowKey MakeFlowKey(const TcpSegment& seg);

enum class EvictionReason : uint8_t { kTableFull, kIdleTimeout, kCount };
std::string_view EvictionReasonName(EvictionReason r);

struct FlowTrackerStats {
  uint64_t segments = 0;          // TCP segments seen
  uint64_t skipped_segments = 0;  // of connections whose record was final (or not monitored)
  uint64_t skipped_bytes = 0;     // their payload bytes
  uint64_t records = 0;           // records emitted
  uint64_t evictions[static_cast<size_t>(EvictionReason::kCount)] = {};
};

class FlowTracker {
 public:
  using RecordFn = std::function<void(SessionRecord&&)>;
  // Called once when a connection's record becomes final, so a capture back end can stop
  // delivering its payload (the eBPF program's saving).
  using FinalFn = std::function<void(const FlowKey&)>;

  FlowTracker(FlowTrackerConfig cfg, RecordFn on_record);
  ~FlowTracker();
  FlowTracker(const FlowTracker&) = delete;
  FlowTracker& operator=(const FlowTracker&) = delete;

  void set_on_final(FinalFn fn) { on_final_ = std::move(fn); }

  // One TCP segment captured at `ts_us` (microseconds since the epoch). The segment's bytes
  // are only read during the call.
  void OnSegment(const TcpSegment& seg, uint64_t ts_us);

  // Drops connections idle for longer than the timeout, as of capture time `now_us`.
  void ExpireIdle(uint64_t now_us);

  // End of input: every connection still open gets its record (incomplete, unknown, ...).
  void Finish();

  size_t active_flows() const { return flows_.size(); }
  const FlowTrackerStats& stats() const { return stats_; }
  const ParseStats& parse_stats() const { return parse_stats_; }

  struct Flow;  // defined in flow_tracker.cc

 private:
  struct Entry {
    std::unique_ptr<Flow> flow;  // null once the record is final (a tombstone)
    uint64_t last_us = 0;
    uint32_t generation = 0;
    uint32_t client_isn = 0;
    uint8_t fin_mask = 0;  // bit 0: client sent FIN, bit 1: server; 4: RST
    bool has_isn = false;
  };

  Entry* Create(const FlowKey& key, const TcpSegment& seg, uint64_t ts_us);
  void Finalize(const FlowKey& key, Entry& e);
  void Evict(const FlowKey& key, EvictionReason why);
  void Emit(uint64_t slot, SessionRecord&& rec);
  void ReleaseSlot(uint64_t slot);
  void Sweep(uint64_t now_us);
  bool IsMonitoredPort(uint16_t port) const;

  FlowTrackerConfig cfg_;
  RecordFn on_record_;
  FinalFn on_final_;
  std::unique_ptr<CertificateCache> cert_cache_;
  absl::flat_hash_map<FlowKey, Entry> flows_;
  // Creation order, for evicting the oldest connection when the table is full.
  std::deque<std::pair<FlowKey, uint32_t>> creation_order_;
  uint32_t next_generation_ = 1;
  uint64_t next_sweep_us_ = 0;
  // Output order: slot i holds the record of the i-th connection, once final.
  std::deque<std::optional<SessionRecord>> pending_;
  std::deque<bool> pending_done_;
  uint64_t pending_base_ = 0;
  uint64_t next_slot_ = 0;
  FlowTrackerStats stats_;
  ParseStats parse_stats_;
  std::vector<bool> port_bitmap_;
};

}  // namespace pgtlsmon::parser
