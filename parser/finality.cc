#include "parser/finality.h"

#include "parser/packet_decoder.h"

namespace pgtlsmon::parser {

bool Tls13(const HandshakeProgress& p) {
  return p.hello_retry_request || (p.server_hello && p.version >= kTls13Version);
}

bool AwaitingClientRecord(const HandshakeProgress& p) {
  return p.server_hello && p.version >= kTls13Version;
}

bool HandshakeFinal(const HandshakeProgress& p) {
  if (p.fatal_alert) return true;
  if (AwaitingClientRecord(p)) return p.client_record_after_server_hello;
  return p.ccs[0] && p.ccs[1] && !Tls13(p);
}

void TcpClose::Add(uint8_t tcp_flags, bool src_is_lo) {
  if (tcp_flags & kTcpRst) {
    rst = true;
  } else if (tcp_flags & kTcpFin) {
    fin[src_is_lo ? 0 : 1] = true;
  }
}

}  // namespace pgtlsmon::parser
