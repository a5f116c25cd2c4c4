#include "parser/direction.h"

#include <gtest/gtest.h>

namespace pgtlsmon::parser {
namespace {

// Evidence of a segment sent by the FlowKey's lo end (true) or hi end (false).
SideEvidence From(bool lo, uint8_t flags, bool sport_mon = false, bool dport_mon = false) {
  return SideEvidence{flags, lo, sport_mon, dport_mon};
}

TEST(Direction, SynSenderIsTheClient) {
  Direction d;
  EXPECT_TRUE(d.Infer(From(false, kTcpSyn)));
  EXPECT_FALSE(d.lo_is_client());
  EXPECT_FALSE(d.Infer(From(true, kTcpSyn | kTcpAck)));
  EXPECT_TRUE(d.Infer(From(false, kTcpAck)));
}

TEST(Direction, SynAckReceiverIsTheClient) {
  Direction d;
  EXPECT_FALSE(d.Infer(From(true, kTcpSyn | kTcpAck)));
  EXPECT_FALSE(d.lo_is_client());
}

TEST(Direction, WithoutSynTheSideAwayFromTheMonitoredPort) {
  Direction d;
  // The first packet comes from the server's port 5432 (monitored) to an ephemeral one.
  EXPECT_FALSE(d.Infer(From(true, kTcpAck, true, false)));
  EXPECT_FALSE(d.lo_is_client());
  // Both ports monitored (or --ports any): the first packet's sender.
  Direction both;
  EXPECT_TRUE(both.Infer(From(true, kTcpAck, true, true)));
  EXPECT_TRUE(both.lo_is_client());
}

TEST(Direction, ALaterSynCorrectsAGuessUntilLocked) {
  Direction d;
  EXPECT_TRUE(d.Infer(From(true, kTcpAck)));   // a guess: the first packet's sender
  EXPECT_TRUE(d.Infer(From(false, kTcpSyn)));  // the real client's SYN
  EXPECT_FALSE(d.lo_is_client());
  d.Lock();  // payload travelled: the record's sides are fixed
  EXPECT_FALSE(d.Infer(From(true, kTcpSyn)));
  EXPECT_FALSE(d.lo_is_client());
}

TEST(Direction, LaterNonSynSegmentsDoNotChangeTheSides) {
  Direction d;
  EXPECT_TRUE(d.Infer(From(true, kTcpSyn)));
  EXPECT_FALSE(d.Infer(From(false, kTcpAck, true, false)));
  EXPECT_TRUE(d.lo_is_client());
}

}  // namespace
}  // namespace pgtlsmon::parser
