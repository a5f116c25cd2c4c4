#include "parser/flow_tracker.h"

#include <algorithm>
#include <cassert>
#include <utility>

#include "parser/certificate.h"
#include "parser/pg_startup.h"
#include "parser/tcp_stream.h"
#include "parser/tls_hello.h"
#include "parser/tls_names.h"
#include "parser/tls_record.h"

namespace pgtlsmon::parser {
namespace {

constexpr size_t kClient = 0;
constexpr size_t kServer = 1;
constexpr uint16_t kTls13 = 0x0304;
constexpr uint64_t kSweepIntervalUs = 5ull * 1000000;
constexpr uint64_t kClosedLingerUs = 30ull * 1000000;  // tombstones of closed connections
constexpr uint8_t kFinClient = 1;
constexpr uint8_t kFinServer = 2;
constexpr uint8_t kRst = 4;

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

bool SameIp(const IpAddress& a, const IpAddress& b) {
  using flow_key_internal::Load64;
  return ((Load64(a.bytes.data()) ^ Load64(b.bytes.data())) |
          (Load64(a.bytes.data() + 8) ^ Load64(b.bytes.data() + 8))) == 0 &&
         a.is_v6 == b.is_v6;
}

// A TLS record's first byte, or an SSLv2-format ClientHello's header.
bool LooksLikeTlsStart(std::span<const uint8_t> d) {
  if (d.empty()) return false;
  if (d[0] >= kContentChangeCipherSpec && d[0] <= kContentApplicationData) return true;
  return (d[0] & 0x80) != 0 && d.size() >= 3 && d[2] == 1;
}
bool LooksLikeClientHelloStart(std::span<const uint8_t> d) {
  if (d.empty()) return false;
  if (d[0] == kContentHandshake) return true;
  return (d[0] & 0x80) != 0 && d.size() >= 3 && d[2] == 1;
}

}  // namespace

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

FlowKey MakeFlowKey(const TcpSegment& seg) {
  FlowKey k;
  if (LessEndpoint(seg.src, seg.sport, seg.dst, seg.dport)) {
    k.lo_ip = seg.src, k.lo_port = seg.sport, k.hi_ip = seg.dst, k.hi_port = seg.dport;
  } else {
    k.lo_ip = seg.dst, k.lo_port = seg.dport, k.hi_ip = seg.src, k.hi_port = seg.sport;
  }
  return k;
}

// Where a connection's startup exchange stands (STYLE.md §4, after the protocol docs).
enum class Phase : uint8_t {
  kAwaitStartup,   // the client's first message
  kAwaitSslReply,  // SSLRequest sent
  kAwaitGssReply,  // GSSENCRequest sent
  kTlsHandshake,
  kRefused,  // 'E' answered: nothing more is parsed
  kSettled,  // the outcome is known (plaintext, cancel, gssenc, not PostgreSQL)
};

struct FlowTracker::Flow {
  class DirectionSink : public TlsRecordSink {
   public:
    DirectionSink(Flow* f, size_t dir) : flow_(f), dir_(dir) {}
    void OnHandshakeMessage(uint8_t type, std::span<const uint8_t> body,
                            uint16_t record_version) override {
      flow_->OnHandshake(dir_, type, body, record_version);
    }
    void OnSslv2ClientHello(std::span<const uint8_t> message) override {
      flow_->OnSslv2Hello(dir_, message);
    }
    void OnAlert(uint8_t level, uint8_t description) override {
      flow_->OnAlert(dir_, level, description);
    }
    void OnChangeCipherSpec() override { flow_->OnCcs(dir_); }
    void OnApplicationData() override {}

   private:
    Flow* flow_;
    size_t dir_;
  };

  Flow(const FlowTrackerConfig& c, ParseStats* s, CertificateCache* certs, HelloCache* hellos)
      : cfg(c),
        stats(s),
        cert_cache(certs),
        hello_cache(hellos),
        streams{TcpStream(c.stream_cap), TcpStream(c.stream_cap)},
        tls{TlsRecordParser(c.max_handshake_message), TlsRecordParser(c.max_handshake_message)},
        sinks{DirectionSink(this, kClient), DirectionSink(this, kServer)} {}

  const FlowTrackerConfig& cfg;
  ParseStats* stats;
  CertificateCache* cert_cache;  // shared by the tracker's connections: decode once per DER
  HelloCache* hello_cache;       // likewise, parse once per hello shape
  SessionRecord rec;
  TcpStream streams[2];
  TlsRecordParser tls[2];
  DirectionSink sinks[2];
  Phase phase = Phase::kAwaitStartup;
  bool recognised = false;   // PostgreSQL startup traffic or a ClientHello seen
  bool has_payload = false;  // a payload byte travelled
  bool closed = false;
  bool fatal_alert = false;
  bool final = false;           // the record can no longer change
  bool handshake_seen = false;  // final by the TLS rules (ServerHello 1.3, both CCS, fatal alert)
  bool ccs[2] = {false, false};
  bool tls_checked[2] = {false, false};  // first bytes of each direction's TLS checked
  std::optional<ServerHelloInfo> hrr;

  void AddPayload(size_t dir, const TcpSegment& seg) {
    streams[dir].AddSegment(seg.seq, seg.payload, seg.payload_wire_len, stats);
    Pump();
  }

  // Moves the startup phase and the TLS record layers forward as far as the bytes allow.
  void Pump() {
    for (bool progress = true; progress && !final;) {
      progress = false;
      switch (phase) {
        case Phase::kAwaitStartup:
          progress = StepStartup();
          break;
        case Phase::kAwaitSslReply:
        case Phase::kAwaitGssReply:
          progress = StepReply();
          break;
        case Phase::kTlsHandshake:
          FeedTls(kClient);
          FeedTls(kServer);
          break;
        case Phase::kRefused:
        case Phase::kSettled:
          break;
      }
    }
  }

  void Settle(Outcome o) {
    rec.outcome = o;
    phase = Phase::kSettled;
    final = true;
  }

  bool StepStartup() {
    TcpStream& s = streams[kClient];
    const auto d = s.data();
    if (d.empty()) return false;
    if (LooksLikeClientHelloStart(d)) {
      rec.pg.direct_tls = rec.pg.ssl_response != 'S';
      phase = Phase::kTlsHandshake;
      return true;
    }
    PgStartupMessage m;
    switch (ParsePgStartup(d, cfg.max_startup_message, &m)) {
      case ParseResult::kNeedMore:
        if (s.broken()) Settle(Outcome::kUnknown);  // cut by the snap length or a hole
        return false;
      case ParseResult::kMalformed:
        stats->Add(Stage::kPostgres, Reason::kBadLength);
        Settle(Outcome::kUnknown);
        return false;
      case ParseResult::kNotThisProtocol:
        Settle(Outcome::kUnknown);
        return false;
      case ParseResult::kOk:
        break;
    }
    recognised = true;
    s.Consume(m.length);
    switch (m.kind) {
      case PgStartupMessage::Kind::kSslRequest:
        rec.pg.ssl_request = true;
        phase = Phase::kAwaitSslReply;
        return true;
      case PgStartupMessage::Kind::kGssEncRequest:
        rec.pg.gssenc_request = true;
        phase = Phase::kAwaitGssReply;
        return true;
      case PgStartupMessage::Kind::kCancelRequest:
        rec.pg.cancel_request = true;
        Settle(Outcome::kCancel);
        return false;
      case PgStartupMessage::Kind::kStartup:
        rec.pg.startup = std::move(m.startup);
        Settle(Outcome::kPlaintext);
        return false;
    }
    return false;
  }

  bool StepReply() {
    TcpStream& s = streams[kServer];
    const auto d = s.data();
    if (d.empty()) return false;
    const bool ssl = phase == Phase::kAwaitSslReply;
    const char reply = static_cast<char>(d[0]);
    s.Consume(1);
    (ssl ? rec.pg.ssl_response : rec.pg.gssenc_response) = reply;
    switch (reply) {
      case 'S':
        if (!ssl) break;
        phase = Phase::kTlsHandshake;
        return true;
      case 'G':
        if (ssl) break;
        Settle(Outcome::kGssenc);
        return false;
      case 'N':
        phase = Phase::kAwaitStartup;  // a plaintext StartupMessage or an SSLRequest may follow
        return true;
      case 'E':
        phase = Phase::kRefused;  // an ErrorResponse follows; the server closes
        return false;
      default:
        break;
    }
    stats->Add(Stage::kPostgres, Reason::kUnexpectedSslReply);
    phase = Phase::kRefused;
    return false;
  }

  void FeedTls(size_t dir) {
    TcpStream& s = streams[dir];
    TlsRecordParser& p = tls[dir];
    if (p.failed()) return;
    auto d = s.data();
    if (d.empty()) return;
    if (!tls_checked[dir]) {
      tls_checked[dir] = true;
      // Bytes other than a TLS record after the SSLRequest/'S' exchange: the injection
      // pattern of CVE-2021-23214 / CVE-2021-23222.
      const bool ok = dir == kClient ? LooksLikeClientHelloStart(d) : LooksLikeTlsStart(d);
      if (!ok && !rec.pg.direct_tls) rec.findings |= FindingBit(Finding::kSslInjectionBytes);
    }
    const size_t used = p.Feed(d, sinks[dir], stats);
    s.Consume(used);
    if (p.failed()) s.Release();
  }

  void OnHandshake(size_t dir, uint8_t type, std::span<const uint8_t> body, uint16_t rv) {
    if (dir == kClient && type == kHandshakeClientHello) {
      if (rec.client_hello) return;  // the second one, after a HelloRetryRequest
      ClientHelloInfo ch;
      if (hello_cache->Client(body, rv, &ch) != ParseResult::kOk) {
        stats->Add(Stage::kTls, Reason::kBadHandshake);
        return;
      }
      recognised = true;
      rec.client_hello = std::move(ch);
    } else if (dir == kServer && type == kHandshakeServerHello) {
      if (rec.server_hello) return;
      ServerHelloInfo sh;
      if (hello_cache->Server(body, &sh) != ParseResult::kOk) {
        stats->Add(Stage::kTls, Reason::kBadHandshake);
        return;
      }
      if (sh.hello_retry_request) {
        if (!hrr) hrr = std::move(sh);
        // Only TLS 1.3 sends a HelloRetryRequest: CCS records are dummies from here on.
        tls[kClient].set_ccs_ends_cleartext(false);
        tls[kServer].set_ccs_ends_cleartext(false);
        return;
      }
      sh.hello_retry_request = hrr.has_value();
      NegotiatedTls t;
      t.version = sh.selected_version.value_or(sh.version);
      t.cipher_suite = sh.cipher_suite;
      rec.tls = t;
      rec.server_hello = std::move(sh);
      if (t.version == kTls13) {
        // Everything after the ServerHello is encrypted: the record is final.
        final = handshake_seen = true;
      }
    } else if (dir == kServer && type == kHandshakeCertificate && !rec.certificate &&
               !(rec.tls && rec.tls->version >= kTls13)) {
      CertificateInfo cert;
      if (cert_cache->DecodeMessage(body, &cert) == ParseResult::kOk) {
        rec.certificate = std::move(cert);
      } else {
        stats->Add(Stage::kCertificate, Reason::kBadCertificate);
      }
    }
  }

  void OnSslv2Hello(size_t dir, std::span<const uint8_t> message) {
    if (dir != kClient || rec.client_hello) return;
    ClientHelloInfo ch;
    if (ParseSslv2ClientHello(message, &ch) != ParseResult::kOk) {
      stats->Add(Stage::kTls, Reason::kBadHandshake);
      return;
    }
    recognised = true;
    rec.client_hello = std::move(ch);
  }

  void OnAlert(size_t dir, uint8_t level, uint8_t description) {
    rec.alerts.push_back({dir == kClient, level, description});
    if (level == 2) {
      fatal_alert = true;
      final = handshake_seen = true;
    }
  }

  void OnCcs(size_t dir) {
    ccs[dir] = true;
    const bool tls13 = hrr.has_value() || (rec.tls && rec.tls->version >= kTls13);
    if (ccs[kClient] && ccs[kServer] && !tls13) final = handshake_seen = true;
  }

  // At the end of a connection whose handshake did not conclude: a TLS record cut short (the
  // capture or the connection ended inside it) and segments that never became contiguous are
  // bytes not parsed; count them.
  void CountUnparsed() {
    if (handshake_seen || phase != Phase::kTlsHandshake) return;
    for (size_t dir : {kClient, kServer}) {
      if (!tls[dir].failed() && !streams[dir].data().empty()) {
        stats->Add(Stage::kTls, Reason::kTruncated);
      }
      if (streams[dir].has_pending()) stats->Add(Stage::kTcp, Reason::kHole);
    }
  }
};

FlowTracker::FlowTracker(FlowTrackerConfig cfg, RecordFn on_record)
    : cfg_(std::move(cfg)),
      on_record_(std::move(on_record)),
      cert_cache_(std::make_unique<CertificateCache>()),
      port_bitmap_(65536 / 64, 0),
      hello_cache_(std::make_unique<HelloCache>()) {
  for (uint16_t p : cfg_.ports) port_bitmap_[p >> 6] |= uint64_t{1} << (p & 63);
}

FlowTracker::~FlowTracker() = default;

FlowTracker::Entry* FlowTracker::Create(const FlowKey& key, const TcpSegment& seg, uint64_t ts_us,
                                        uint64_t sequence) {
  if (flows_.size() >= cfg_.max_flows) {
    // Evict the oldest connection still in the table.
    while (!creation_order_.empty()) {
      auto [old_key, gen] = creation_order_.front();
      creation_order_.pop_front();
      auto it = flows_.find(old_key);
      if (it != flows_.end() && it->second.generation == gen) {
        Evict(old_key, EvictionReason::kTableFull);
        break;
      }
    }
  }
  Entry& e = flows_[key];
  e = Entry();
  e.generation = next_generation_++;
  e.last_us = ts_us;
  creation_order_.emplace_back(key, e.generation);
  if (creation_order_.size() > 2 * flows_.size() + 1024) {
    // Drop stale positions (connections already gone) so the queue stays bounded.
    std::erase_if(creation_order_, [this](const auto& p) {
      auto it = flows_.find(p.first);
      return it == flows_.end() || it->second.generation != p.second;
    });
  }

  e.first_us = ts_us;
  e.sequence = sequence;
  if (seg.tunnel.type != TunnelType::kNone) e.tunnel = std::make_unique<TunnelInfo>(seg.tunnel);
  e.slot = next_slot_++;
  pending_.push_back(Pending{nullptr, sequence, false});
  // Who is the client: the SYN sender; else the SYN-ACK receiver; else the side away from a
  // monitored port; else the sender of the first packet.
  const bool syn = (seg.flags & kTcpSyn) != 0;
  const bool ack = (seg.flags & kTcpAck) != 0;
  bool src_is_client = true;
  if (syn) {
    src_is_client = !ack;
  } else if (!cfg_.any_port && IsMonitoredPort(seg.sport) && !IsMonitoredPort(seg.dport)) {
    src_is_client = false;
  }
  const bool src_is_lo = seg.sport == key.lo_port && SameIp(seg.src, key.lo_ip);
  e.lo_is_client = src_is_lo == src_is_client;
  return &e;
}

// The connection's first payload byte: its handshake state comes to life.
FlowTracker::Flow* FlowTracker::StartFlow(const FlowKey& key, Entry& e) {
  e.flow = std::make_unique<Flow>(cfg_, &parse_stats_, cert_cache_.get(), hello_cache_.get());
  Flow& f = *e.flow;
  SessionRecord& rec = f.rec;
  rec.ts_us = e.first_us;
  rec.sequence = e.sequence;
  const Endpoint lo{key.lo_ip, key.lo_port};
  const Endpoint hi{key.hi_ip, key.hi_port};
  rec.client = e.lo_is_client ? lo : hi;
  rec.server = e.lo_is_client ? hi : lo;
  if (e.tunnel) rec.tunnel = *e.tunnel;
  if (e.has_isn) f.streams[kClient].SetInitialSequence(e.client_isn + 1);
  if (e.has_server_isn) f.streams[kServer].SetInitialSequence(e.server_isn + 1);
  f.closed = e.fin_mask != 0;
  return &f;
}

void FlowTracker::SweepDue(uint64_t ts_us) {
  if (next_sweep_us_ != 0) Sweep(ts_us);
  next_sweep_us_ = ts_us + kSweepIntervalUs;
}

void FlowTracker::OnSegment(const TcpSegment& seg, uint64_t ts_us) {
  OnSegment(seg, ts_us, next_slot_);
}

void FlowTracker::OnSegment(const TcpSegment& seg, uint64_t ts_us, uint64_t packet_index) {
  ++stats_.segments;
  AdvanceTime(ts_us);
  if (!cfg_.any_port && !IsMonitoredPort(seg.sport) && !IsMonitoredPort(seg.dport)) {
    ++stats_.skipped_segments;
    stats_.skipped_bytes += seg.payload_wire_len;
    return;
  }
  const FlowKey key = MakeFlowKey(seg);
  const bool syn = (seg.flags & kTcpSyn) != 0;
  const bool ack = (seg.flags & kTcpAck) != 0;
  auto it = flows_.find(key);
  Entry* e = nullptr;
  if (it != flows_.end()) [[likely]] {
    e = &it->second;
    if (e->settled && !syn) [[likely]] {
      // The record is final: count and move on (the cost of a hash probe).
      e->last_us = std::max(e->last_us, ts_us);
      ++stats_.skipped_segments;
      stats_.skipped_bytes += seg.payload_wire_len;
      if (seg.flags & kTcpRst) e->fin_mask |= kRst;
      if (seg.flags & kTcpFin) e->fin_mask |= kFinClient;  // either side: closing
      return;
    }
    // A new SYN on a finished 4-tuple starts a new connection with its own record.
    if (syn && !ack && e->has_isn && seg.seq != e->client_isn && (e->fin_mask != 0 || e->settled)) {
      Finalize(key, *e);
      flows_.erase(it);
      e = nullptr;
    }
  }
  if (e == nullptr) e = Create(key, seg, ts_us, packet_index);
  e->last_us = std::max(e->last_us, ts_us);
  if (e->settled) {
    // A retransmitted SYN of a connection whose record is final.
    ++stats_.skipped_segments;
    stats_.skipped_bytes += seg.payload_wire_len;
    return;
  }

  const bool src_is_lo = seg.sport == key.lo_port && SameIp(seg.src, key.lo_ip);
  bool from_client = src_is_lo == e->lo_is_client;
  Flow* f = e->flow.get();
  if (syn && (f == nullptr || !f->has_payload) && (ack == from_client)) {
    // A SYN from the side we took for the server (or a SYN-ACK from the client) before any
    // payload: the first packet misled us, swap.
    e->lo_is_client = !e->lo_is_client;
    if (f != nullptr) std::swap(f->rec.client, f->rec.server);
    from_client = !from_client;
  }
  const size_t dir = from_client ? kClient : kServer;
  if (syn) {
    (from_client ? e->client_isn : e->server_isn) = seg.seq;
    (from_client ? e->has_isn : e->has_server_isn) = true;
    if (f != nullptr) f->streams[dir].SetInitialSequence(seg.seq + 1);
  }
  if (f == nullptr && seg.payload_wire_len > 0) f = StartFlow(key, *e);
  if (f == nullptr) {
    // No payload yet (SYN, ACK, FIN): the table entry is all there is.
    if (seg.flags & (kTcpFin | kTcpRst)) {
      e->fin_mask |= (seg.flags & kTcpRst) ? kRst : (from_client ? kFinClient : kFinServer);
      if ((e->fin_mask & kRst) ||
          (e->fin_mask & (kFinClient | kFinServer)) == (kFinClient | kFinServer)) {
        Finalize(key, *e);
      }
    }
    return;
  }
  if (seg.payload_wire_len > 0) {
    f->has_payload = true;
    f->AddPayload(dir, seg);
  }
  if (seg.flags & (kTcpFin | kTcpRst)) {
    f->closed = true;
    e->fin_mask |= (seg.flags & kTcpRst) ? kRst : (from_client ? kFinClient : kFinServer);
    if ((e->fin_mask & kRst) ||
        (e->fin_mask & (kFinClient | kFinServer)) == (kFinClient | kFinServer)) {
      f->final = true;
    }
  }
  if (f->final) Finalize(key, *e);
}

// Computes the outcome, `legacy` and the findings from what the connection showed.
static void Conclude(FlowTracker::Flow& f) {
  SessionRecord& r = f.rec;
  if (!r.server_hello && f.hrr) {
    // Only a HelloRetryRequest arrived: report it; nothing was negotiated.
    r.server_hello = std::move(f.hrr);
    r.server_hello->hello_retry_request = true;
  }
  if (r.client_hello) {
    if (r.tls && !f.fatal_alert) {
      r.outcome = Outcome::kTls;
    } else if (f.fatal_alert || f.closed) {
      r.outcome = Outcome::kTlsFailed;
    } else {
      r.outcome = Outcome::kIncomplete;
    }
  } else if (r.pg.gssenc_response == 'G') {
    r.outcome = Outcome::kGssenc;
  } else if (r.pg.startup) {
    r.outcome = Outcome::kPlaintext;
  } else if (r.pg.cancel_request) {
    r.outcome = Outcome::kCancel;
  } else if (r.pg.ssl_response == 'N' || r.pg.ssl_response == 'E' || r.pg.gssenc_response == 'N' ||
             r.pg.gssenc_response == 'E') {
    r.outcome = Outcome::kSslRefused;
  } else {
    r.outcome = Outcome::kUnknown;
  }

  // The newest known version the client offered.
  int offered_rank = -1;
  bool offered_old = false;
  if (r.client_hello) {
    const auto& ch = *r.client_hello;
    auto consider = [&](uint16_t v) {
      const int rank = VersionRank(v);
      if (rank < 0) return;
      if (rank > offered_rank) {
        offered_rank = rank;
        r.client_hello_max_version = v;
      }
    };
    if (!ch.supported_versions.empty()) {
      for (uint16_t v : ch.supported_versions) {
        consider(v);
        const int rank = VersionRank(v);
        if (rank >= 0 && rank < kRankTls12) offered_old = true;
      }
    } else {
      consider(ch.version);
    }
  }
  uint32_t fs = r.findings & FindingBit(Finding::kSslInjectionBytes);
  if (r.tls) {
    const int rank = VersionRank(r.tls->version);
    r.legacy = rank >= 0 && rank < kRankTls12;
    if (r.legacy) fs |= FindingBit(Finding::kLegacyTlsNegotiated);
    if (rank >= kRankTls12 && offered_old) fs |= FindingBit(Finding::kClientAcceptsLegacyTls);
    if (IsWeakCipher(r.tls->cipher_suite)) fs |= FindingBit(Finding::kWeakCipher);
  } else if (r.client_hello) {
    r.legacy = offered_rank >= 0 && offered_rank < kRankTls12;
    if (r.legacy) fs |= FindingBit(Finding::kLegacyTlsOfferedOnly);
  }
  if (r.outcome == Outcome::kPlaintext) fs |= FindingBit(Finding::kPlaintextSession);
  if (r.pg.ssl_response == 'N') fs |= FindingBit(Finding::kSslRefusedByServer);
  if (r.outcome == Outcome::kTlsFailed) fs |= FindingBit(Finding::kHandshakeFailed);
  if (r.certificate) {
    const auto now_s = static_cast<int64_t>(r.ts_us / 1000000);
    if (now_s > r.certificate->not_after || now_s < r.certificate->not_before) {
      fs |= FindingBit(Finding::kCertificateExpired);
    }
    const auto& kt = r.certificate->key_type;
    const int bits = r.certificate->key_bits;
    if (((kt == "RSA" || kt == "DSA") && bits < 2048) || (kt == "EC" && bits < 224)) {
      fs |= FindingBit(Finding::kWeakCertificateKey);
    }
  }
  r.findings = fs;
}

void FlowTracker::Finalize(const FlowKey& key, Entry& e) {
  if (e.settled) return;
  e.settled = true;
  Flow* f = e.flow.get();
  if (f != nullptr) {
    f->CountUnparsed();
    Conclude(*f);
  }
  // No payload, no record. With --ports any, only connections recognised as PostgreSQL or TLS
  // are reported, and never as `unknown` (an SSLRequest that got no answer, say).
  if (f != nullptr && f->has_payload &&
      (!cfg_.any_port || (f->recognised && f->rec.outcome != Outcome::kUnknown))) {
    Emit(e.slot, std::move(f->rec));
  } else {
    ReleaseSlot(e.slot);
  }
  e.flow.reset();
  if (on_final_) on_final_(key);
}

void FlowTracker::Emit(uint64_t slot, SessionRecord&& rec) {
  ++stats_.records;
  if (!cfg_.ordered_output) {
    on_record_(std::move(rec));
    ReleaseSlot(slot);
    return;
  }
  const size_t i = static_cast<size_t>(slot - pending_base_);
  if (i == 0) {  // the oldest connection: no need to park the record
    on_record_(std::move(rec));
  } else {
    pending_[i].rec = std::make_unique<SessionRecord>(std::move(rec));
  }
  ReleaseSlot(slot);
}

void FlowTracker::ReleaseSlot(uint64_t slot) {
  const size_t i = static_cast<size_t>(slot - pending_base_);
  pending_[i].done = true;
  while (!pending_.empty() && pending_.front().done) {
    if (pending_.front().rec) on_record_(std::move(*pending_.front().rec));
    pending_.pop_front();
    ++pending_base_;
  }
}

void FlowTracker::Evict(const FlowKey& key, EvictionReason why) {
  auto it = flows_.find(key);
  if (it == flows_.end()) return;
  ++stats_.evictions[static_cast<size_t>(why)];
  Finalize(key, it->second);
  flows_.erase(it);
}

void FlowTracker::Sweep(uint64_t now_us) {
  std::vector<FlowKey> expired;
  for (const auto& [key, e] : flows_) {
    const uint64_t limit = e.fin_mask != 0 && e.settled
                               ? std::min(cfg_.idle_timeout_us, kClosedLingerUs)
                               : cfg_.idle_timeout_us;
    if (now_us > e.last_us && now_us - e.last_us > limit) expired.push_back(key);
  }
  for (const FlowKey& key : expired) {
    auto it = flows_.find(key);
    // A closed tombstone leaving is not an eviction: its connection is over.
    if (it->second.settled) {
      flows_.erase(it);
    } else {
      Evict(key, EvictionReason::kIdleTimeout);
    }
  }
}

void FlowTracker::ExpireIdle(uint64_t now_us) { Sweep(now_us); }

void FlowTracker::Finish() {
  // In order of first packets, so the output keeps its order even when unordered.
  std::vector<std::pair<uint64_t, FlowKey>> open;
  for (const auto& [key, e] : flows_) {
    if (!e.settled) open.emplace_back(e.sequence, key);
  }
  std::sort(open.begin(), open.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [seq, key] : open) Finalize(key, flows_[key]);
  flows_.clear();
  creation_order_.clear();
}

}  // namespace pgtlsmon::parser
