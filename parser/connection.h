// parser/connection.h: one TCP connection's state machine, from its first payload byte until
// its record is final: the PostgreSQL startup exchange, then the TLS handshake, read through
// one TcpStream and one TlsRecordParser per direction.
//
// States, named after session-record.md's words:
//   kAwaitStartup ──SSLRequest──> kAwaitSslResponse ──'S'──> kTlsHandshake
//        │    ^ ──GSSENCRequest─> kAwaitGssencResponse ──'G'──> kFinal (gssenc)
//        │    └──────── 'N' (from either) ──┘           'E', other byte ──> kRefused
//        ├── ClientHello (direct TLS) ──> kTlsHandshake
//        └── StartupMessage, CancelRequest, not PostgreSQL ──> kFinal
//   kTlsHandshake ──TLS 1.3 ServerHello──> kAwaitClientRecord ──client's next record──> kFinal
//   kTlsHandshake ──ChangeCipherSpec both ways (TLS <= 1.2), fatal alert──> kFinal
// kRefused waits for the close (an ErrorResponse follows 'E'); the close (finality.h, TcpClose)
// makes any state final, which is the tracker's business. When a record is final: finality.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "parser/events.h"
#include "parser/finality.h"
#include "parser/packet_decoder.h"
#include "parser/parse_stats.h"
#include "parser/tcp_stream.h"
#include "parser/tls_record.h"

namespace pgtlsmon::parser {

class CertificateCache;
class HelloCache;

struct ConnectionLimits {
  size_t stream_cap = 16 * 1024 + 5;  // bytes buffered per direction
  size_t max_handshake_message = size_t{64} * 1024;
  size_t max_startup_message = 10000;
  // Keep the first ClientHello's bytes in SessionRecord::client_hello_raw (--what-if replays
  // them into OpenSSL); at most max_handshake_message bytes, freed with the record.
  bool keep_client_hello = false;
};

enum class ConnectionState : uint8_t {
  kAwaitStartup,         // the client's first message (or ClientHello)
  kAwaitSslResponse,     // SSLRequest sent: the server's one-byte answer
  kAwaitGssencResponse,  // GSSENCRequest sent: likewise
  kTlsHandshake,         // hellos, certificate, alerts, ChangeCipherSpec in clear
  kAwaitClientRecord,    // TLS 1.3 ServerHello seen: the client's next record decides
  kRefused,              // 'E' (or an unexpected byte) answered: nothing more is parsed
  kFinal,                // the record can no longer change
};

class Connection {
 public:
  static constexpr size_t kClient = 0;
  static constexpr size_t kServer = 1;

  // `stats`, `certs` and `hellos` are the tracker's, shared by its connections.
  Connection(const ConnectionLimits& limits, ParseStats* stats, CertificateCache* certs,
             HelloCache* hellos);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  SessionRecord& record() { return rec_; }
  ConnectionState state() const { return state_; }
  bool final() const { return state_ == ConnectionState::kFinal; }
  // PostgreSQL startup traffic or a ClientHello was seen (--ports any reports only these).
  bool recognised() const { return recognised_; }

  // The sequence number of direction `dir`'s first payload byte (its SYN's + 1).
  void SetInitialSequence(size_t dir, uint32_t next_seq) {
    streams_[dir].SetInitialSequence(next_seq);
  }
  // A segment's payload in direction `dir`; moves the state machine as far as the bytes allow.
  void AddPayload(size_t dir, const TcpSegment& seg);
  // A FIN or RST was seen.
  void MarkClosed() { closed_ = true; }
  void MarkFinal() { state_ = ConnectionState::kFinal; }

  // The record as final (outcome, legacy, findings filled in); counts the bytes a handshake
  // cut short left unparsed. Call once, when the tracker makes the record final.
  SessionRecord& FinalRecord();

 private:
  class DirectionSink : public TlsRecordSink {
   public:
    DirectionSink(Connection* c, size_t dir) : conn_(c), dir_(dir) {}
    void OnHandshakeMessage(uint8_t type, std::span<const uint8_t> body,
                            uint16_t record_version) override {
      conn_->OnHandshake(dir_, type, body, record_version);
    }
    void OnSslv2ClientHello(std::span<const uint8_t> message) override {
      conn_->OnSslv2Hello(dir_, message);
    }
    void OnAlert(uint8_t level, uint8_t description) override {
      conn_->OnAlert(dir_, level, description);
    }
    void OnChangeCipherSpec() override { conn_->OnCcs(dir_); }
    void OnApplicationData() override { conn_->OnRecord(dir_); }

   private:
    Connection* conn_;
    size_t dir_;
  };

  void Pump();
  void MakeFinal(Outcome o);  // rule (a): the outcome alone makes the record final
  bool StepStartup();
  bool StepReply();
  void FeedTls(size_t dir);
  void OnHandshake(size_t dir, uint8_t type, std::span<const uint8_t> body, uint16_t rv);
  void OnSslv2Hello(size_t dir, std::span<const uint8_t> message);
  void OnAlert(size_t dir, uint8_t level, uint8_t description);
  void OnCcs(size_t dir);
  // Any record of direction `dir` (after its own callback): the TLS finality rules.
  void OnRecord(size_t dir);
  void CountUnparsed();

  const ConnectionLimits& limits_;
  ParseStats* stats_;
  CertificateCache* cert_cache_;  // decode once per DER
  HelloCache* hello_cache_;       // parse once per hello shape
  SessionRecord rec_;
  TcpStream streams_[2];
  TlsRecordParser tls_[2];
  DirectionSink sinks_[2];
  ConnectionState state_ = ConnectionState::kAwaitStartup;
  HandshakeProgress progress_;
  std::optional<ServerHelloInfo> hrr_;
  bool recognised_ = false;
  bool closed_ = false;
  bool tls_checked_[2] = {false, false};  // first bytes of each direction's TLS checked
};

}  // namespace pgtlsmon::parser
