#include "parser/flow_tracker.h"

#include <algorithm>
#include <utility>

#include "parser/certificate.h"
#include "parser/tls_hello.h"

namespace pgtlsmon::parser {
namespace {

constexpr size_t kClient = Connection::kClient;
constexpr size_t kServer = Connection::kServer;
constexpr uint64_t kClosedLingerUs = 30ull * 1000000;  // tombstones of closed connections

}  // namespace

FlowTracker::FlowTracker(FlowTrackerConfig cfg, RecordFn on_record)
    : cfg_(std::move(cfg)),
      limits_{cfg_.stream_cap, cfg_.max_handshake_message, cfg_.max_startup_message,
              cfg_.keep_client_hello},
      cert_cache_(std::make_unique<CertificateCache>()),
      hello_cache_(std::make_unique<HelloCache>()),
      table_(cfg_.max_flows, &stats_.evictions),
      order_(cfg_.ordered_output, std::move(on_record)),
      port_bitmap_(65536 / 64, 0) {
  for (uint16_t p : cfg_.ports) port_bitmap_[p >> 6] |= uint64_t{1} << (p & 63);
}

FlowTracker::~FlowTracker() = default;

FlowTracker::Entry& FlowTracker::Create(const FlowKey& key, uint64_t ts_us, uint64_t sequence) {
  Entry& e = table_.Insert(key, [this](const FlowKey& k, Entry& old) { MakeFinal(k, old); });
  e.last_us = ts_us;
  e.first_us = ts_us;
  e.sequence = sequence;
  e.slot = order_.Reserve(sequence);
  return e;
}

// The connection's first payload byte: its state machine comes to life, its sides are fixed.
Connection* FlowTracker::StartConnection(const FlowKey& key, Entry& e) {
  e.conn =
      std::make_unique<Connection>(limits_, &parse_stats_, cert_cache_.get(), hello_cache_.get());
  e.direction.Lock();
  Connection& c = *e.conn;
  SessionRecord& rec = c.record();
  rec.ts_us = e.first_us;
  rec.sequence = e.sequence;
  const Endpoint lo{key.lo_ip, key.lo_port};
  const Endpoint hi{key.hi_ip, key.hi_port};
  const bool lo_is_client = e.direction.lo_is_client();
  rec.client = lo_is_client ? lo : hi;
  rec.server = lo_is_client ? hi : lo;
  if (e.tunnel) rec.tunnel = *e.tunnel;
  const size_t client_end = e.client_end();
  if (e.has_isn[client_end]) c.SetInitialSequence(kClient, e.isn[client_end] + 1);
  if (e.has_isn[1 - client_end]) c.SetInitialSequence(kServer, e.isn[1 - client_end] + 1);
  if (e.close.any()) c.MarkClosed();
  return &c;
}

void FlowTracker::SweepDue(uint64_t ts_us) {
  if (next_sweep_us_ != 0) Sweep(ts_us);
  next_sweep_us_ = ts_us + kSweepIntervalUs;
}

void FlowTracker::OnSegment(const TcpSegment& seg, uint64_t ts_us) {
  OnSegment(seg, ts_us, order_.next_slot());
}

void FlowTracker::OnSegment(const TcpSegment& seg, uint64_t ts_us, uint64_t packet_index) {
  ++stats_.segments;
  AdvanceTime(ts_us);
  if (!cfg_.any_port && !IsMonitoredPort(seg.sport) && !IsMonitoredPort(seg.dport)) {
    ++stats_.skipped_segments;
    stats_.skipped_bytes += seg.payload_wire_len;
    return;
  }
  bool src_is_lo = false;
  const FlowKey key = MakeFlowKey(seg, &src_is_lo);
  const bool syn = (seg.flags & kTcpSyn) != 0;
  const bool ack = (seg.flags & kTcpAck) != 0;
  const bool fin_or_rst = (seg.flags & (kTcpFin | kTcpRst)) != 0;
  Entry* e = table_.Find(key);
  if (e != nullptr) [[likely]] {
    if (e->final && !syn) [[likely]] {
      // The record is final: count and move on (the cost of a hash probe).
      e->last_us = std::max(e->last_us, ts_us);
      ++stats_.skipped_segments;
      stats_.skipped_bytes += seg.payload_wire_len;
      if (fin_or_rst) e->close.Add(seg.flags, src_is_lo);
      return;
    }
    // A new SYN on a finished 4-tuple starts a new connection with its own record.
    const size_t client_end = e->client_end();
    if (syn && !ack && e->has_isn[client_end] && seg.seq != e->isn[client_end] &&
        (e->close.any() || e->final)) {
      MakeFinal(key, *e);
      table_.Erase(key);
      e = nullptr;
    }
  }
  if (e == nullptr) {
    e = &Create(key, ts_us, packet_index);
    if (seg.tunnel.type != TunnelType::kNone) e->tunnel = std::make_unique<TunnelInfo>(seg.tunnel);
  }
  e->last_us = std::max(e->last_us, ts_us);
  if (e->final) {
    // A retransmitted SYN of a connection whose record is final.
    ++stats_.skipped_segments;
    stats_.skipped_bytes += seg.payload_wire_len;
    return;
  }

  const bool from_client =
      e->direction.Infer({seg.flags, src_is_lo, !cfg_.any_port && IsMonitoredPort(seg.sport),
                          !cfg_.any_port && IsMonitoredPort(seg.dport)});
  const size_t dir = from_client ? kClient : kServer;
  Connection* c = e->conn.get();
  if (syn) {
    const size_t end = src_is_lo ? 0 : 1;
    e->isn[end] = seg.seq;
    e->has_isn[end] = true;
    if (c != nullptr) c->SetInitialSequence(dir, seg.seq + 1);
  }
  if (c == nullptr && seg.payload_wire_len > 0) c = StartConnection(key, *e);
  if (c != nullptr && seg.payload_wire_len > 0) c->AddPayload(dir, seg);
  if (fin_or_rst) {
    e->close.Add(seg.flags, src_is_lo);
    if (c != nullptr) c->MarkClosed();
  }
  if (e->close.closed() || (c != nullptr && c->final())) MakeFinal(key, *e);
}

void FlowTracker::MakeFinal(const FlowKey& key, Entry& e) {
  if (e.final) return;
  e.final = true;
  Connection* c = e.conn.get();
  if (c == nullptr) {
    order_.Release(e.slot);  // no payload, no record
  } else {
    SessionRecord& rec = c->FinalRecord();
    // With --ports any, only connections recognised as PostgreSQL or TLS are reported, and
    // never as `unknown` (an SSLRequest that got no answer, say).
    if (!cfg_.any_port || (c->recognised() && rec.outcome != Outcome::kUnknown)) {
      ++stats_.records;
      order_.Deliver(e.slot, std::move(rec));
    } else {
      order_.Release(e.slot);
    }
    e.conn.reset();
  }
  if (on_final_) on_final_(key);
}

void FlowTracker::Sweep(uint64_t now_us) {
  std::vector<FlowKey> expired;
  table_.ForEach([&](const FlowKey& key, const Entry& e) {
    // A tombstone of a connection that is over leaves sooner.
    const uint64_t limit = e.final && e.close.closed()
                               ? std::min(cfg_.idle_timeout_us, kClosedLingerUs)
                               : cfg_.idle_timeout_us;
    if (now_us > e.last_us && now_us - e.last_us > limit) expired.push_back(key);
  });
  for (const FlowKey& key : expired) {
    // A tombstone leaving is not an eviction: its record is out.
    if (table_.Find(key)->final) {
      table_.Erase(key);
    } else {
      table_.Evict(key, EvictionReason::kIdleTimeout,
                   [this](const FlowKey& k, Entry& old) { MakeFinal(k, old); });
    }
  }
}

void FlowTracker::ExpireIdle(uint64_t now_us) { Sweep(now_us); }

void FlowTracker::Finish() {
  // In order of first packets, so the output keeps its order even when unordered.
  std::vector<std::pair<uint64_t, FlowKey>> open;
  table_.ForEach([&](const FlowKey& key, const Entry& e) {
    if (!e.final) open.emplace_back(e.sequence, key);
  });
  std::sort(open.begin(), open.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [seq, key] : open) MakeFinal(key, *table_.Find(key));
  table_.Clear();
}

}  // namespace pgtlsmon::parser
