// parser/flow_tracker.h: TCP segments in (parser/packet_decoder.h), session records out.
//
// The facade over the parts of flow tracking, each in its own file:
//   flow_table.h    the connection table (FlowKey, its seeded hash, bound, evictions)
//   direction.h     which end is the client
//   connection.h    one connection's state machine (startup exchange, TLS handshake)
//   finality.h      when a record is final (session-record.md)
//   outcome.h       what the final record says (outcome, legacy, findings)
//   record_order.h  records in first-packet order
// Pure: no I/O, no clock (time is the capture's). One FlowTracker is single-threaded; shard
// connections over several trackers by FlowKeyHash to use more cores.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "parser/connection.h"
#include "parser/direction.h"
#include "parser/events.h"
#include "parser/finality.h"
#include "parser/flow_table.h"
#include "parser/packet_decoder.h"
#include "parser/parse_stats.h"
#include "parser/record_order.h"

namespace pgtlsmon::parser {

class CertificateCache;
class HelloCache;

struct FlowTrackerConfig {
  std::vector<uint16_t> ports = {5432};  // PostgreSQL ports (ignored when any_port)
  bool any_port = false;                 // recognise PostgreSQL and TLS by content everywhere
  size_t max_flows = 262144;             // connection table cap (then the oldest is evicted)
  uint64_t idle_timeout_us = 600ull * 1000000;  // a connection silent this long is dropped
  size_t stream_cap = 16 * 1024 + 5;            // bytes buffered per direction (one TLS record)
  size_t max_handshake_message = size_t{64} * 1024;
  size_t max_startup_message = 10000;  // PostgreSQL's own MAX_STARTUP_PACKET_LENGTH
  // Records come out in the order of the connections' first packets (replay); otherwise as
  // soon as they are final (live).
  bool ordered_output = true;
  // Keep the first ClientHello's bytes in SessionRecord::client_hello_raw (--what-if replays
  // them into OpenSSL); at most max_handshake_message bytes each, freed with the record.
  bool keep_client_hello = false;
  // Tunnel ports for the packet decoder (`--vxlan-ports`, `--geneve-ports`); the tracker
  // itself only sees decoded segments.
  DecapConfig decap;
};

struct FlowTrackerStats {
  uint64_t segments = 0;          // TCP segments seen
  uint64_t skipped_segments = 0;  // of connections whose record was final (or not monitored)
  uint64_t skipped_bytes = 0;     // their payload bytes
  uint64_t records = 0;           // records emitted
  EvictionCounts evictions = {};
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
  // The same, with the packet's index in the whole input: a connection's record gets the index
  // of its first packet as `sequence`, so records of several trackers (one per shard of the
  // connections) can be merged back into first-packet order.
  void OnSegment(const TcpSegment& seg, uint64_t ts_us, uint64_t packet_index);

  // Capture time between two idle sweeps. The schedule is a function of the segments'
  // timestamps alone: a sweep is due at the first segment at or past the previous sweep's
  // time plus this (the first segment only starts the schedule), so a dispatcher sharding
  // segments over several trackers can tell them when (app::SweepClock).
  static constexpr uint64_t kSweepIntervalUs = 5ull * 1000000;

  // Capture time moves on without a segment for this tracker (another shard's packet): runs
  // the idle sweep when it is due, exactly when a single tracker seeing every packet would.
  void AdvanceTime(uint64_t ts_us) {
    if (ts_us >= next_sweep_us_) SweepDue(ts_us);
  }

  // With ordered output: the smallest `sequence` whose record may still be delivered (the
  // oldest connection not delivered yet); nullopt when every record so far was delivered.
  std::optional<uint64_t> oldest_pending_sequence() const {
    return order_.oldest_pending_sequence();
  }

  // Drops connections idle for longer than the timeout, as of capture time `now_us`.
  void ExpireIdle(uint64_t now_us);

  // End of input: every connection still open gets its record (incomplete, unknown, ...).
  void Finish();

  size_t active_flows() const { return table_.size(); }
  const FlowTrackerStats& stats() const { return stats_; }
  const ParseStats& parse_stats() const { return parse_stats_; }

 private:
  // A connection in the table. Its Connection (~1.5 KB) is only allocated with the first
  // payload byte, so a SYN flood costs an Entry per half-open connection; once the record is
  // final the Connection is freed and the Entry stays as a tombstone, so later packets cost
  // one hash probe.
  struct Entry {
    std::unique_ptr<Connection> conn;  // null before the first payload byte and once final
    // The tunnel of the connection's first packet, if it came in one (allocated only then).
    std::unique_ptr<TunnelInfo> tunnel;
    uint64_t last_us = 0;
    uint64_t first_us = 0;     // the connection's first packet
    uint64_t sequence = 0;     // its index in the input (record order)
    uint64_t slot = 0;         // its place in the output order
    uint32_t isn[2] = {0, 0};  // by end (FlowKey lo, hi): the SYN's sequence number
    bool has_isn[2] = {false, false};
    TcpClose close;
    Direction direction;
    bool final = false;  // the record is final (or there will be none): a tombstone

    size_t client_end() const { return direction.lo_is_client() ? 0 : 1; }
  };

  Entry& Create(const FlowKey& key, uint64_t ts_us, uint64_t sequence);
  Connection* StartConnection(const FlowKey& key, Entry& e);
  void MakeFinal(const FlowKey& key, Entry& e);
  void SweepDue(uint64_t ts_us);
  void Sweep(uint64_t now_us);
  bool IsMonitoredPort(uint16_t port) const {
    return ((port_bitmap_[port >> 6] >> (port & 63)) & 1) != 0;
  }

  FlowTrackerConfig cfg_;
  ConnectionLimits limits_;
  FinalFn on_final_;
  std::unique_ptr<CertificateCache> cert_cache_;
  std::unique_ptr<HelloCache> hello_cache_;
  FlowTrackerStats stats_;
  ParseStats parse_stats_;
  FlowTable<Entry> table_;
  RecordOrder order_;
  uint64_t next_sweep_us_ = 0;
  std::vector<uint64_t> port_bitmap_;  // 65536 bits
};

}  // namespace pgtlsmon::parser
