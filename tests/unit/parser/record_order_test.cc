#include "parser/record_order.h"

#include <gtest/gtest.h>

#include <vector>

namespace pgtlsmon::parser {
namespace {

SessionRecord Rec(uint64_t seq) {
  SessionRecord r;
  r.sequence = seq;
  return r;
}

TEST(RecordOrder, OrderedWaitsForOlderConnections) {
  std::vector<uint64_t> out;
  RecordOrder o(true, [&out](SessionRecord&& r) { out.push_back(r.sequence); });
  const uint64_t a = o.Reserve(10);
  const uint64_t b = o.Reserve(11);
  const uint64_t c = o.Reserve(12);
  EXPECT_EQ(o.oldest_pending_sequence(), 10u);
  o.Deliver(c, Rec(12));
  o.Deliver(b, Rec(11));
  EXPECT_TRUE(out.empty());
  o.Release(a);  // the oldest will have no record
  EXPECT_EQ(out, (std::vector<uint64_t>{11, 12}));
  EXPECT_EQ(o.oldest_pending_sequence(), std::nullopt);
}

TEST(RecordOrder, UnorderedDeliversAtOnce) {
  std::vector<uint64_t> out;
  RecordOrder o(false, [&out](SessionRecord&& r) { out.push_back(r.sequence); });
  o.Reserve(1);
  const uint64_t b = o.Reserve(2);
  o.Deliver(b, Rec(2));
  EXPECT_EQ(out, (std::vector<uint64_t>{2}));
  EXPECT_EQ(o.oldest_pending_sequence(), 1u);
}

}  // namespace
}  // namespace pgtlsmon::parser
