// parser/flow_tracker.h: the connection table and each connection's handshake state.
//
// TCP segments in (parser/packet_decoder.h), session records out. Pure: no I/O, no clock
// (time is the capture's), no globals. One FlowTracker is single-threaded; shard connections
// over several trackers by FlowKey hash to use more cores.
#pragma once

#include <cstdint>
#include <cstring>
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
class HelloCache;

struct FlowTrackerConfig {
  std::vector<uint16_t> ports = {5432};  // PostgreSQL ports (ignored when any_port)
  bool any_port = false;                 // recognise PostgreSQL and TLS by content everywhere
  size_t max_flows = 262144;             // connection table cap (then the oldest is evicted)
  uint64_t idle_timeout_us = 600ull * 1000000;  // a connection silent this long is dropped
  size_t stream_cap = 16 * 1024 + 5;            // bytes buffered per direction (one TLS record)
  size_t max_handshake_message = 64 * 1024;
  size_t max_startup_message = 10000;  // PostgreSQL's own MAX_STARTUP_PACKET_LENGTH
  // Records come out in the order of the connections' first packets (replay); otherwise as
  // soon as they are final (live).
  bool ordered_output = true;
  // Tunnel ports for the packet decoder (`--vxlan-ports`, `--geneve-ports`); the tracker
  // itself only sees decoded segments.
  DecapConfig decap;
};

// A connection's addresses in a canonical order, so both directions find one entry.
struct FlowKey {
  IpAddress lo_ip;
  IpAddress hi_ip;
  uint16_t lo_port = 0;
  uint16_t hi_port = 0;
};

namespace flow_key_internal {
inline uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline uint64_t Mum(uint64_t a, uint64_t b) {
  const unsigned __int128 r = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}
}  // namespace flow_key_internal

// The connection table's hash: the addresses as four 64-bit words and the ports, mixed with
// three 64x64->128 multiplies (wyhash's "mum"). The key is canonical, so the hash is symmetric:
// both directions of a connection get the same value (replay --threads shards by it).
inline uint64_t FlowKeyHash(const FlowKey& k) {
  using flow_key_internal::Load64;
  using flow_key_internal::Mum;
  const uint64_t ports = (uint64_t{k.lo_port} << 16) | k.hi_port | (uint64_t{k.lo_ip.is_v6} << 32) |
                         (uint64_t{k.hi_ip.is_v6} << 33);
  const uint64_t h1 = Mum(Load64(k.lo_ip.bytes.data()) ^ 0xa0761d6478bd642full,
                          Load64(k.hi_ip.bytes.data()) ^ 0xe7037ed1a0b428dbull);
  const uint64_t h2 = Mum(Load64(k.lo_ip.bytes.data() + 8) ^ 0x8ebc6af09c88c6e3ull ^ ports,
                          Load64(k.hi_ip.bytes.data() + 8) ^ 0x589965cc75374cc3ull);
  return Mum(h1 ^ 0x1d8e4e27c47d124full, h2 ^ ports);
}

inline bool operator==(const FlowKey& a, const FlowKey& b) {
  using flow_key_internal::Load64;
  const uint8_t* al = a.lo_ip.bytes.data();
  const uint8_t* ah = a.hi_ip.bytes.data();
  const uint8_t* bl = b.lo_ip.bytes.data();
  const uint8_t* bh = b.hi_ip.bytes.data();
  return ((Load64(al) ^ Load64(bl)) | (Load64(al + 8) ^ Load64(bl + 8)) |         // NOLINT
          (Load64(ah) ^ Load64(bh)) | (Load64(ah + 8) ^ Load64(bh + 8))) == 0 &&  // NOLINT
         a.lo_port == b.lo_port &&
         a.hi_port == b.hi_port && a.lo_ip.is_v6 == b.lo_ip.is_v6 && a.hi_ip.is_v6 == b.hi_ip.is_v6;
}

template <typename H>
H AbslHashValue(H h, const FlowKey& k) {
  return H::combine(std::move(h), FlowKeyHash(k));
}

struct FlowKeyHasher {
  size_t operator()(const FlowKey& k) const { return static_cast<size_t>(FlowKeyHash(k)); }
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
  // The same, with the packet's index in the whole input: a connection's record gets the index
  // of its first packet as `sequence`, so records of several trackers (one per shard of the
  // connections) can be merged back into first-packet order.
  void OnSegment(const TcpSegment& seg, uint64_t ts_us, uint64_t packet_index);

  // Capture time moves on without a segment for this tracker (another shard's packet): runs
  // the idle sweep when it is due, exactly when a single tracker seeing every packet would.
  void AdvanceTime(uint64_t ts_us) {
    if (ts_us >= next_sweep_us_) SweepDue(ts_us);
  }

  // With ordered output: the smallest `sequence` whose record may still be delivered (the
  // oldest connection not delivered yet); nullopt when every record so far was delivered.
  std::optional<uint64_t> oldest_pending_sequence() const {
    if (pending_.empty()) return std::nullopt;
    return pending_.front().sequence;
  }

  // Drops connections idle for longer than the timeout, as of capture time `now_us`.
  void ExpireIdle(uint64_t now_us);

  // End of input: every connection still open gets its record (incomplete, unknown, ...).
  void Finish();

  size_t active_flows() const { return flows_.size(); }
  const FlowTrackerStats& stats() const { return stats_; }
  const ParseStats& parse_stats() const { return parse_stats_; }

  struct Flow;  // defined in flow_tracker.cc

 private:
  // A connection in the table. Its handshake state (Flow, ~1.5 KB) is only allocated with the
  // first payload byte, so a SYN flood costs an Entry per half-open connection; once the
  // record is final the Flow is freed and the Entry stays as a tombstone.
  struct Entry {
    std::unique_ptr<Flow> flow;  // null before the first payload byte and once settled
    // The tunnel of the connection's first packet, if it came in one (allocated only then).
    std::unique_ptr<TunnelInfo> tunnel;
    uint64_t last_us = 0;
    uint64_t first_us = 0;  // the connection's first packet
    uint64_t sequence = 0;  // its index in the input (record order)
    uint64_t slot = 0;      // its place in the output order
    uint32_t generation = 0;
    uint32_t client_isn = 0;
    uint32_t server_isn = 0;
    uint8_t fin_mask = 0;  // bit 0: client sent FIN, bit 1: server; 4: RST
    bool has_isn = false;
    bool has_server_isn = false;
    bool lo_is_client = true;  // which end of the FlowKey is the client
    bool settled = false;      // the record is final (or there will be none): a tombstone
  };
  Flow* StartFlow(const FlowKey& key, Entry& e);

  Entry* Create(const FlowKey& key, const TcpSegment& seg, uint64_t ts_us, uint64_t sequence);
  void Finalize(const FlowKey& key, Entry& e);
  void Evict(const FlowKey& key, EvictionReason why);
  void SweepDue(uint64_t ts_us);
  void Emit(uint64_t slot, SessionRecord&& rec);
  void ReleaseSlot(uint64_t slot);
  void Sweep(uint64_t now_us);
  bool IsMonitoredPort(uint16_t port) const {
    return ((port_bitmap_[port >> 6] >> (port & 63)) & 1) != 0;
  }

  FlowTrackerConfig cfg_;
  RecordFn on_record_;
  FinalFn on_final_;
  std::unique_ptr<CertificateCache> cert_cache_;
  absl::flat_hash_map<FlowKey, Entry, FlowKeyHasher> flows_;
  // Creation order, for evicting the oldest connection when the table is full.
  std::deque<std::pair<FlowKey, uint32_t>> creation_order_;
  uint32_t next_generation_ = 1;
  uint64_t next_sweep_us_ = 0;
  // Output order: slot i holds the record of the i-th connection, once final.
  struct Pending {
    std::unique_ptr<SessionRecord> rec;  // null until final (or when nothing is reported)
    uint64_t sequence = 0;
    bool done = false;
  };
  std::deque<Pending> pending_;
  uint64_t pending_base_ = 0;
  uint64_t next_slot_ = 0;
  FlowTrackerStats stats_;
  ParseStats parse_stats_;
  std::vector<uint64_t> port_bitmap_;  // 65536 bits
  std::unique_ptr<HelloCache> hello_cache_;
};

}  // namespace pgtlsmon::parser
