// parser/finality.h: when a connection's record is final (session-record.md, "When a record is
// final"), as rules over what the connection has shown, apart from the bytes that show it.
//
// From that point the record can no longer change: it is emitted, the connection's buffers are
// freed, later packets cost one hash probe, and the capture back end is told (on_final) so the
// eBPF program stops copying the connection's payload.
#pragma once

#include <cstdint>

namespace pgtlsmon::parser {

inline constexpr uint16_t kTls13Version = 0x0304;

// The TLS handshake so far, by direction where it matters (0: client, 1: server).
struct HandshakeProgress {
  bool hello_retry_request = false;  // TLS 1.3 even before its ServerHello
  bool server_hello = false;         // a ServerHello, not a HelloRetryRequest
  uint16_t version = 0;              // negotiated by that ServerHello
  bool ccs[2] = {false, false};      // ChangeCipherSpec seen
  bool client_record_after_server_hello = false;
  bool fatal_alert = false;  // in clear, either direction
};

// TLS 1.3 is in use (a HelloRetryRequest, or a ServerHello selecting it): ChangeCipherSpec is a
// dummy then (RFC 8446 D.4).
bool Tls13(const HandshakeProgress& p);

// Rules (b), (c) and the fatal alert of (d):
// (b) TLS 1.3: the ServerHello, then the client's first record after it (normally a
//     ChangeCipherSpec or an encrypted record; a fatal alert in clear there makes the outcome
//     tls_failed);
// (c) TLS 1.2 and older: a ChangeCipherSpec in both directions;
// (d) a fatal alert in clear.
bool HandshakeFinal(const HandshakeProgress& p);

// TLS 1.3 after its ServerHello: nothing the server sends can change the record any more
// (everything is encrypted), only the client's next record can.
bool AwaitingClientRecord(const HandshakeProgress& p);

// FIN and RST seen on a connection, by end (0: the FlowKey's lo end, 1: its hi end), so the
// sides need not be known yet.
struct TcpClose {
  bool fin[2] = {false, false};
  bool rst = false;

  void Add(uint8_t tcp_flags, bool src_is_lo);
  bool any() const { return rst || fin[0] || fin[1]; }
  // Rule (d), the connection's close: an RST, or a FIN from each end (a FIN from one end alone
  // is a half-close: the other may still send).
  bool closed() const { return rst || (fin[0] && fin[1]); }
};

}  // namespace pgtlsmon::parser
