#include "parser/tcp_stream.h"

#include <algorithm>
#include <cstddef>

namespace pgtlsmon::parser {
namespace {

// Signed distance from a to b in sequence space (RFC 1982 serial arithmetic).
int64_t SeqDiff(uint32_t b, uint32_t a) { return static_cast<int32_t>(b - a); }

}  // namespace

void TcpStream::Append(std::span<const uint8_t> bytes, ParseStats* stats) {
  if (bytes.empty()) return;
  const size_t room = cap_ > buffered() ? cap_ - buffered() : 0;
  if (bytes.size() > room) {
    // The consumer is not keeping up (no framing completes within the cap): stop here.
    stats->Add(Stage::kTcp, Reason::kCapExceeded);
    bytes = bytes.first(room);
    broken_ = true;
  }
  if (start_ > 0 && start_ == buf_.size()) {
    buf_.clear();
    start_ = 0;
  }
  buf_.insert(buf_.end(), bytes.begin(), bytes.end());
  delivered_ += bytes.size();
}

void TcpStream::AddSegment(uint32_t seq, std::span<const uint8_t> payload, uint32_t wire_len,
                           ParseStats* stats) {
  if (released_ || broken_ || wire_len == 0) return;
  if (!started_) SetInitialSequence(seq);
  const int64_t off = SeqDiff(seq, next_seq_);
  if (off > 0) {
    // Out of order: keep it for later, within the cap (buffered() already holds the bytes
    // waiting out of order: they count once).
    if (payload.size() < wire_len || payload.size() + buffered() > cap_ || pending_.size() >= 64) {
      stats->Add(Stage::kTcp, Reason::kCapExceeded);
      return;
    }
    // A copy of a segment already waiting (retransmitted out of order) is dropped.
    for (const Pending& p : pending_) {
      if (p.seq == seq && p.bytes.size() >= payload.size()) return;
    }
    pending_.push_back({seq, std::vector<uint8_t>(payload.begin(), payload.end())});
    pending_bytes_ += payload.size();
    return;
  }
  // Drop what was already delivered (retransmission or overlap).
  const auto skip = static_cast<uint64_t>(-off);
  if (skip >= wire_len) return;
  const bool cut = payload.size() < wire_len;
  if (skip < payload.size()) {
    Append(payload.subspan(static_cast<size_t>(skip)), stats);
  }
  next_seq_ += static_cast<uint32_t>(wire_len - skip);
  if (cut) {
    // The snap length cut this segment: the rest of the stream cannot be contiguous.
    stats->Add(Stage::kTcp, Reason::kHole);
    broken_ = true;
    return;
  }
  DrainPending(stats);
}

void TcpStream::DrainPending(ParseStats* stats) {
  bool progress = true;
  while (progress && !pending_.empty() && !broken_) {
    progress = false;
    for (size_t i = 0; i < pending_.size(); ++i) {
      const int64_t off = SeqDiff(pending_[i].seq, next_seq_);
      if (off > 0) continue;
      Pending p = std::move(pending_[i]);
      pending_.erase(pending_.begin() + static_cast<ptrdiff_t>(i));
      pending_bytes_ -= p.bytes.size();
      const auto skip = static_cast<size_t>(-off);
      if (skip < p.bytes.size()) {
        Append(std::span<const uint8_t>(p.bytes).subspan(skip), stats);
        next_seq_ += static_cast<uint32_t>(p.bytes.size() - skip);
      }
      progress = true;
      break;
    }
  }
}

void TcpStream::Consume(size_t n) {
  start_ += std::min(n, buf_.size() - start_);
  if (start_ == buf_.size()) {
    buf_.clear();
    start_ = 0;
  } else if (start_ > 4096 && start_ * 2 > buf_.size()) {
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(start_));
    start_ = 0;
  }
}

void TcpStream::Release() {
  released_ = true;
  std::vector<uint8_t>().swap(buf_);
  std::vector<Pending>().swap(pending_);
  start_ = 0;
  pending_bytes_ = 0;
}

}  // namespace pgtlsmon::parser
