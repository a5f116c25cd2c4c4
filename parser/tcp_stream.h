// parser/tcp_stream.h: bounded reassembly of the first bytes of one TCP direction.
//
// The per-direction buffer is the parser's only copy of payload. In-order bytes are appended
// to `data()`; the consumer (PostgreSQL startup phase, then the TLS record layer) takes what it
// can from the front with Consume(). Out-of-order segments wait in a bounded list; duplicate
// bytes (retransmissions, overlaps) are dropped, keeping the first copy seen.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "parser/parse_stats.h"

namespace pgtlsmon::parser {

class TcpStream {
 public:
  // `cap` bounds the bytes buffered (unconsumed plus waiting out of order).
  explicit TcpStream(size_t cap) : cap_(cap) {}

  // The sequence number of the first payload byte to expect (SYN's seq + 1).
  void SetInitialSequence(uint32_t next_seq) {
    if (!started_) {
      next_seq_ = next_seq;
      started_ = true;
    }
  }

  // Adds a segment. `wire_len` is its payload length on the wire; when the snap length cut the
  // capture (payload.size() < wire_len) the missing bytes are a hole that never fills.
  void AddSegment(uint32_t seq, std::span<const uint8_t> payload, uint32_t wire_len,
                  ParseStats* stats);

  // In-order bytes not consumed yet.
  std::span<const uint8_t> data() const { return std::span<const uint8_t>(buf_).subspan(start_); }
  void Consume(size_t n);

  // A hole sits right after data(): nothing more will ever be contiguous.
  bool broken() const { return broken_; }
  // Bytes that arrived in order so far (consumed or not).
  uint64_t delivered() const { return delivered_; }
  bool has_pending() const { return !pending_.empty(); }
  size_t buffered() const { return buf_.size() - start_ + pending_bytes_; }

  // Frees every buffer; later segments are ignored.
  void Release();

 private:
  struct Pending {
    uint32_t seq;
    std::vector<uint8_t> bytes;
  };
  void Append(std::span<const uint8_t> bytes, ParseStats* stats);
  void DrainPending(ParseStats* stats);

  size_t cap_;
  bool started_ = false;
  bool broken_ = false;
  bool released_ = false;
  uint32_t next_seq_ = 0;
  uint64_t delivered_ = 0;
  std::vector<uint8_t> buf_;  // bytes, so data() needs no cast
  size_t start_ = 0;
  std::vector<Pending> pending_;
  size_t pending_bytes_ = 0;
};

}  // namespace pgtlsmon::parser
