// parser/record_order.h: records leave in the order of their connections' first packets
// (session-record.md: "Records come in the order the connections' first packets were
// captured"), or, for live output, as soon as they are final.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>

#include "parser/events.h"

namespace pgtlsmon::parser {

class RecordOrder {
 public:
  using RecordFn = std::function<void(SessionRecord&&)>;

  RecordOrder(bool ordered, RecordFn on_record)
      : ordered_(ordered), on_record_(std::move(on_record)) {}

  // A new connection (its first packet has index `sequence`): its place in the output.
  uint64_t Reserve(uint64_t sequence) {
    pending_.push_back(Pending{nullptr, sequence, false});
    return next_slot_++;
  }
  // The connection's record, final: delivered now, or once every older connection's has left.
  void Deliver(uint64_t slot, SessionRecord&& rec);
  // The connection will have no record: its slot no longer holds the others back.
  void Release(uint64_t slot);

  // The smallest `sequence` whose record may still be delivered; nullopt when none is pending.
  std::optional<uint64_t> oldest_pending_sequence() const {
    if (pending_.empty()) return std::nullopt;
    return pending_.front().sequence;
  }
  uint64_t next_slot() const { return next_slot_; }

 private:
  struct Pending {
    std::unique_ptr<SessionRecord> rec;  // null until final (or when nothing is reported)
    uint64_t sequence = 0;
    bool released = false;
  };
  bool ordered_;
  RecordFn on_record_;
  // Slot i (from base_) holds the record of the i-th connection, once final.
  std::deque<Pending> pending_;
  uint64_t base_ = 0;
  uint64_t next_slot_ = 0;
};

}  // namespace pgtlsmon::parser
