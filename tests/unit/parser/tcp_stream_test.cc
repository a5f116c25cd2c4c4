#include "parser/tcp_stream.h"

#include <gtest/gtest.h>

#include <string>

#include "parser/text.h"

namespace pgtlsmon::parser {
namespace {

std::span<const uint8_t> B(const std::string& s) { return AsBytes(s); }
std::string Str(std::span<const uint8_t> d) { return {d.begin(), d.end()}; }

TEST(TcpStream, InOrder) {
  ParseStats st;
  TcpStream s(100);
  s.SetInitialSequence(1000);
  s.AddSegment(1000, B("hello "), 6, &st);
  s.AddSegment(1006, B("world"), 5, &st);
  EXPECT_EQ(Str(s.data()), "hello world");
  s.Consume(6);
  EXPECT_EQ(Str(s.data()), "world");
  EXPECT_EQ(s.delivered(), 11u);
}

TEST(TcpStream, RetransmissionAndOverlapKeepOneCopy) {
  ParseStats st;
  TcpStream s(100);
  s.SetInitialSequence(1);
  s.AddSegment(1, B("abcd"), 4, &st);
  s.AddSegment(1, B("abcd"), 4, &st);   // retransmission
  s.AddSegment(3, B("cdefg"), 5, &st);  // overlap: only "efg" is new
  EXPECT_EQ(Str(s.data()), "abcdefg");
  EXPECT_EQ(st.Total(), 0u);
}

TEST(TcpStream, OutOfOrderIsReordered) {
  ParseStats st;
  TcpStream s(100);
  s.SetInitialSequence(10);
  s.AddSegment(14, B("efgh"), 4, &st);
  s.AddSegment(18, B("ij"), 2, &st);
  EXPECT_TRUE(s.data().empty());
  s.AddSegment(10, B("abcd"), 4, &st);
  EXPECT_EQ(Str(s.data()), "abcdefghij");
  EXPECT_FALSE(s.has_pending());
}

// The cap bounds the bytes buffered, each counted once: segments waiting out of order up to
// the cap are kept (they used to count twice against it, so the third one here was dropped as
// cap_exceeded and the stream never became contiguous).
TEST(TcpStream, OutOfOrderBytesCountOnceAgainstTheCap) {
  ParseStats st;
  TcpStream s(10);
  s.SetInitialSequence(0);
  s.AddSegment(2, B("cde"), 3, &st);
  s.AddSegment(5, B("fgh"), 3, &st);
  s.AddSegment(8, B("ij"), 2, &st);
  EXPECT_EQ(s.buffered(), 8u);
  EXPECT_EQ(st.Get(Stage::kTcp, Reason::kCapExceeded), 0u);
  s.AddSegment(0, B("ab"), 2, &st);
  EXPECT_EQ(Str(s.data()), "abcdefghij");
  EXPECT_FALSE(s.has_pending());
  EXPECT_EQ(st.Total(), 0u);
  // One byte more than the cap allows is still refused, and counted.
  s.AddSegment(11, B("x"), 1, &st);
  EXPECT_EQ(st.Get(Stage::kTcp, Reason::kCapExceeded), 1u);
}

TEST(TcpStream, SequenceWrapAround) {
  ParseStats st;
  TcpStream s(100);
  s.SetInitialSequence(0xfffffffe);
  s.AddSegment(0xfffffffe, B("ab"), 2, &st);
  s.AddSegment(0, B("cd"), 2, &st);
  EXPECT_EQ(Str(s.data()), "abcd");
}

TEST(TcpStream, SnapLengthCutIsAHole) {
  ParseStats st;
  TcpStream s(100);
  s.SetInitialSequence(1);
  s.AddSegment(1, B("abc"), 10, &st);  // 10 bytes on the wire, 3 captured
  s.AddSegment(11, B("zzz"), 3, &st);  // never contiguous
  EXPECT_EQ(Str(s.data()), "abc");
  EXPECT_TRUE(s.broken());
  EXPECT_EQ(st.Get(Stage::kTcp, Reason::kHole), 1u);
}

TEST(TcpStream, CapIsCounted) {
  ParseStats st;
  TcpStream s(8);
  s.SetInitialSequence(1);
  s.AddSegment(1, B("0123456789"), 10, &st);
  EXPECT_EQ(s.data().size(), 8u);
  EXPECT_TRUE(s.broken());
  EXPECT_EQ(st.Get(Stage::kTcp, Reason::kCapExceeded), 1u);
}

TEST(TcpStream, ReleaseFreesAndIgnoresLaterSegments) {
  ParseStats st;
  TcpStream s(100);
  s.SetInitialSequence(1);
  s.AddSegment(1, B("abc"), 3, &st);
  s.Release();
  s.AddSegment(4, B("def"), 3, &st);
  EXPECT_TRUE(s.data().empty());
  EXPECT_EQ(s.buffered(), 0u);
}

}  // namespace
}  // namespace pgtlsmon::parser
