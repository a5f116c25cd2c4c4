#include "parser/record_order.h"

namespace pgtlsmon::parser {

void RecordOrder::Deliver(uint64_t slot, SessionRecord&& rec) {
  if (!ordered_) {
    on_record_(std::move(rec));
    Release(slot);
    return;
  }
  const auto i = static_cast<size_t>(slot - base_);
  if (i == 0) {  // the oldest connection: no need to park the record
    on_record_(std::move(rec));
  } else {
    pending_[i].rec = std::make_unique<SessionRecord>(std::move(rec));
  }
  Release(slot);
}

void RecordOrder::Release(uint64_t slot) {
  const auto i = static_cast<size_t>(slot - base_);
  pending_[i].released = true;
  while (!pending_.empty() && pending_.front().released) {
    if (pending_.front().rec) on_record_(std::move(*pending_.front().rec));
    pending_.pop_front();
    ++base_;
  }
}

}  // namespace pgtlsmon::parser
