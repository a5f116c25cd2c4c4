#include "parser/direction.h"

namespace pgtlsmon::parser {

bool Direction::Infer(const SideEvidence& ev) {
  const bool syn = (ev.tcp_flags & kTcpSyn) != 0;
  if (!decided_ || (syn && !locked_)) {
    bool src_is_client = true;
    if (syn) {
      src_is_client = (ev.tcp_flags & kTcpAck) == 0;  // SYN: the client; SYN-ACK: the server
    } else if (ev.sport_monitored && !ev.dport_monitored) {
      src_is_client = false;
    }
    lo_is_client_ = ev.src_is_lo == src_is_client;
    decided_ = true;
  }
  return FromClient(ev.src_is_lo);
}

}  // namespace pgtlsmon::parser
