// parser/direction.h: which end of a connection is the client (session-record.md, `client`):
// the SYN sender; without a SYN, the receiver of the SYN-ACK; without either, the side away
// from a monitored port; else the sender of the first captured packet.
#pragma once

#include <cstdint>

#include "parser/packet_decoder.h"

namespace pgtlsmon::parser {

// What a segment says about the sides, besides its addresses.
struct SideEvidence {
  uint8_t tcp_flags = 0;
  bool src_is_lo = false;        // it was sent by the FlowKey's lo end
  bool sport_monitored = false;  // its source port is a monitored (server) port
  bool dport_monitored = false;  // likewise its destination port
};

// The client end of one connection, as its segments reveal it.
class Direction {
 public:
  // Takes one segment's evidence and returns whether that segment came from the client. The
  // connection's first segment decides; later, a SYN or SYN-ACK decides again (the first
  // packet may have misled us) until Lock().
  bool Infer(const SideEvidence& ev);
  // The connection's first payload byte: its record's sides are fixed from here on.
  void Lock() { locked_ = true; }

  bool lo_is_client() const { return lo_is_client_; }
  bool FromClient(bool src_is_lo) const { return src_is_lo == lo_is_client_; }

 private:
  bool decided_ = false;
  bool locked_ = false;
  bool lo_is_client_ = true;
};

}  // namespace pgtlsmon::parser
