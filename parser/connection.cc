#include "parser/connection.h"

#include <utility>

#include "parser/certificate.h"
#include "parser/outcome.h"
#include "parser/pg_startup.h"
#include "parser/tls_hello.h"

namespace pgtlsmon::parser {
namespace {

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

Connection::Connection(const ConnectionLimits& limits, ParseStats* stats, CertificateCache* certs,
                       HelloCache* hellos)
    : limits_(limits),
      stats_(stats),
      cert_cache_(certs),
      hello_cache_(hellos),
      streams_{TcpStream(limits.stream_cap), TcpStream(limits.stream_cap)},
      tls_{TlsRecordParser(limits.max_handshake_message),
           TlsRecordParser(limits.max_handshake_message)},
      sinks_{DirectionSink(this, kClient), DirectionSink(this, kServer)} {}

void Connection::AddPayload(size_t dir, const TcpSegment& seg) {
  streams_[dir].AddSegment(seg.seq, seg.payload, seg.payload_wire_len, stats_);
  Pump();
}

// Moves the startup exchange and the TLS record layers forward as far as the bytes allow.
void Connection::Pump() {
  for (bool progress = true; progress;) {
    progress = false;
    switch (state_) {
      case ConnectionState::kAwaitStartup:
        progress = StepStartup();
        break;
      case ConnectionState::kAwaitSslResponse:
      case ConnectionState::kAwaitGssencResponse:
        progress = StepReply();
        break;
      case ConnectionState::kTlsHandshake:
      case ConnectionState::kAwaitClientRecord:
        FeedTls(kClient);
        FeedTls(kServer);
        break;
      case ConnectionState::kRefused:
      case ConnectionState::kFinal:
        break;
    }
  }
}

void Connection::MakeFinal(Outcome o) {
  rec_.outcome = o;
  state_ = ConnectionState::kFinal;
}

bool Connection::StepStartup() {
  TcpStream& s = streams_[kClient];
  const auto d = s.data();
  if (d.empty()) return false;
  if (LooksLikeClientHelloStart(d)) {
    rec_.pg.direct_tls = rec_.pg.ssl_response != 'S';
    state_ = ConnectionState::kTlsHandshake;
    return true;
  }
  PgStartupMessage m;
  switch (ParsePgStartup(d, limits_.max_startup_message, &m)) {
    case ParseResult::kNeedMore:
      if (s.broken()) MakeFinal(Outcome::kUnknown);  // cut by the snap length or a hole
      return false;
    case ParseResult::kMalformed:
      stats_->Add(Stage::kPostgres, Reason::kBadLength);
      MakeFinal(Outcome::kUnknown);
      return false;
    case ParseResult::kNotThisProtocol:
      MakeFinal(Outcome::kUnknown);
      return false;
    case ParseResult::kOk:
      break;
  }
  recognised_ = true;
  s.Consume(m.length);
  switch (m.kind) {
    case PgStartupMessage::Kind::kSslRequest:
      rec_.pg.ssl_request = true;
      state_ = ConnectionState::kAwaitSslResponse;
      return true;
    case PgStartupMessage::Kind::kGssEncRequest:
      rec_.pg.gssenc_request = true;
      state_ = ConnectionState::kAwaitGssencResponse;
      return true;
    case PgStartupMessage::Kind::kCancelRequest:
      rec_.pg.cancel_request = true;
      MakeFinal(Outcome::kCancel);
      return false;
    case PgStartupMessage::Kind::kStartup:
      rec_.pg.startup = std::move(m.startup);
      MakeFinal(Outcome::kPlaintext);
      return false;
  }
  return false;
}

bool Connection::StepReply() {
  TcpStream& s = streams_[kServer];
  const auto d = s.data();
  if (d.empty()) return false;
  const bool ssl = state_ == ConnectionState::kAwaitSslResponse;
  const char reply = static_cast<char>(d[0]);
  s.Consume(1);
  (ssl ? rec_.pg.ssl_response : rec_.pg.gssenc_response) = reply;
  switch (reply) {
    case 'S':
      if (!ssl) break;
      state_ = ConnectionState::kTlsHandshake;
      return true;
    case 'G':
      if (ssl) break;
      MakeFinal(Outcome::kGssenc);
      return false;
    case 'N':
      state_ = ConnectionState::kAwaitStartup;  // a StartupMessage or an SSLRequest may follow
      return true;
    case 'E':
      state_ = ConnectionState::kRefused;  // an ErrorResponse follows; the server closes
      return false;
    default:
      break;
  }
  stats_->Add(Stage::kPostgres, Reason::kUnexpectedSslReply);
  state_ = ConnectionState::kRefused;
  return false;
}

void Connection::FeedTls(size_t dir) {
  TcpStream& s = streams_[dir];
  TlsRecordParser& p = tls_[dir];
  if (p.failed()) return;
  auto d = s.data();
  if (d.empty()) return;
  if (!tls_checked_[dir]) {
    tls_checked_[dir] = true;
    // Bytes other than a TLS record after the SSLRequest/'S' exchange: the injection pattern
    // of CVE-2021-23214 / CVE-2021-23222.
    const bool ok = dir == kClient ? LooksLikeClientHelloStart(d) : LooksLikeTlsStart(d);
    if (!ok && !rec_.pg.direct_tls) rec_.findings |= FindingBit(Finding::kSslInjectionBytes);
  }
  const size_t used = p.Feed(d, sinks_[dir], stats_);
  s.Consume(used);
  // A failed parser reads no more; and in TLS 1.3 what the server sends after its
  // ServerHello is encrypted: stop reading it.
  if (p.failed() || (dir == kServer && state_ == ConnectionState::kAwaitClientRecord)) {
    s.Release();
  }
}

void Connection::OnHandshake(size_t dir, uint8_t type, std::span<const uint8_t> body, uint16_t rv) {
  if (dir == kClient && type == kHandshakeClientHello) {
    if (!rec_.client_hello) {  // not the second one, after a HelloRetryRequest
      ClientHelloInfo ch;
      if (hello_cache_->Client(body, rv, &ch) == ParseResult::kOk) {
        recognised_ = true;
        rec_.client_hello = std::move(ch);
        if (limits_.keep_client_hello) {
          RawClientHello raw;
          raw.record_version = rv;
          raw.message.reserve(4 + body.size());
          raw.message.push_back(type);
          raw.message.push_back(static_cast<uint8_t>(body.size() >> 16));
          raw.message.push_back(static_cast<uint8_t>(body.size() >> 8));
          raw.message.push_back(static_cast<uint8_t>(body.size()));
          raw.message.insert(raw.message.end(), body.begin(), body.end());
          rec_.client_hello_raw = std::move(raw);
        }
      } else {
        stats_->Add(Stage::kTls, Reason::kBadHandshake);
      }
    }
  } else if (dir == kServer && type == kHandshakeServerHello) {
    if (!rec_.server_hello) {
      ServerHelloInfo sh;
      if (hello_cache_->Server(body, &sh) != ParseResult::kOk) {
        stats_->Add(Stage::kTls, Reason::kBadHandshake);
      } else if (sh.hello_retry_request) {
        if (!hrr_) hrr_ = std::move(sh);
        progress_.hello_retry_request = true;
        // Only TLS 1.3 sends a HelloRetryRequest: CCS records are dummies from here on.
        tls_[kClient].set_ccs_ends_cleartext(false);
        tls_[kServer].set_ccs_ends_cleartext(false);
      } else {
        sh.hello_retry_request = hrr_.has_value();
        NegotiatedTls t;
        t.version = sh.selected_version.value_or(sh.version);
        t.cipher_suite = sh.cipher_suite;
        rec_.tls = t;
        rec_.server_hello = std::move(sh);
        progress_.server_hello = true;
        progress_.version = t.version;
        if (state_ == ConnectionState::kTlsHandshake && AwaitingClientRecord(progress_)) {
          state_ = ConnectionState::kAwaitClientRecord;
        }
      }
    }
  } else if (dir == kServer && type == kHandshakeCertificate && !rec_.certificate &&
             !(rec_.tls && rec_.tls->version >= kTls13Version)) {
    CertificateInfo cert;
    if (cert_cache_->DecodeMessage(body, &cert) == ParseResult::kOk) {
      rec_.certificate = std::move(cert);
    } else {
      stats_->Add(Stage::kCertificate, Reason::kBadCertificate);
    }
  }
  OnRecord(dir);
}

void Connection::OnSslv2Hello(size_t dir, std::span<const uint8_t> message) {
  if (dir == kClient && !rec_.client_hello) {
    ClientHelloInfo ch;
    if (ParseSslv2ClientHello(message, &ch) == ParseResult::kOk) {
      recognised_ = true;
      rec_.client_hello = std::move(ch);
      if (limits_.keep_client_hello) {
        rec_.client_hello_raw = RawClientHello{true, 0x0002, {message.begin(), message.end()}};
      }
    } else {
      stats_->Add(Stage::kTls, Reason::kBadHandshake);
    }
  }
  OnRecord(dir);
}

void Connection::OnAlert(size_t dir, uint8_t level, uint8_t description) {
  rec_.alerts.push_back({dir == kClient, level, description});
  if (level == 2) progress_.fatal_alert = true;
  OnRecord(dir);
}

void Connection::OnCcs(size_t dir) {
  progress_.ccs[dir] = true;
  OnRecord(dir);
}

void Connection::OnRecord(size_t dir) {
  if (dir == kClient && state_ == ConnectionState::kAwaitClientRecord) {
    progress_.client_record_after_server_hello = true;
  }
  if (HandshakeFinal(progress_)) state_ = ConnectionState::kFinal;
}

// A record made final by the close or the end of the capture, mid-handshake: a TLS record cut
// short (the capture or the connection ended inside it) and segments that never became contiguous
// are bytes not parsed; count them.
void Connection::CountUnparsed() {
  if (state_ != ConnectionState::kTlsHandshake && state_ != ConnectionState::kAwaitClientRecord) {
    return;
  }
  for (size_t dir : {kClient, kServer}) {
    if (!tls_[dir].failed() && !streams_[dir].data().empty()) {
      stats_->Add(Stage::kTls, Reason::kTruncated);
    }
    if (streams_[dir].has_pending()) stats_->Add(Stage::kTcp, Reason::kHole);
  }
}

SessionRecord& Connection::FinalRecord() {
  CountUnparsed();
  ApplyOutcomeRules(&rec_, &hrr_, ConnectionFacts{progress_.fatal_alert, closed_});
  return rec_;
}

}  // namespace pgtlsmon::parser
