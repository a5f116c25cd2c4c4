#include "parser/finality.h"

#include <gtest/gtest.h>

#include "parser/packet_decoder.h"

namespace pgtlsmon::parser {
namespace {

constexpr size_t kC = 0;
constexpr size_t kS = 1;

TEST(Finality, Tls12IsFinalAfterChangeCipherSpecBothWays) {
  HandshakeProgress p;
  p.server_hello = true;
  p.version = 0x0303;
  EXPECT_FALSE(HandshakeFinal(p));
  p.ccs[kS] = true;
  EXPECT_FALSE(HandshakeFinal(p));
  p.ccs[kC] = true;
  EXPECT_TRUE(HandshakeFinal(p));
  EXPECT_FALSE(AwaitingClientRecord(p));
}

TEST(Finality, Tls13WaitsForTheClientsFirstRecordAfterTheServerHello) {
  HandshakeProgress p;
  p.server_hello = true;
  p.version = 0x0304;
  EXPECT_TRUE(Tls13(p));
  EXPECT_TRUE(AwaitingClientRecord(p));
  EXPECT_FALSE(HandshakeFinal(p));  // the ServerHello alone is no longer enough
  p.ccs[kS] = true;                 // the server's dummy ChangeCipherSpec changes nothing
  EXPECT_FALSE(HandshakeFinal(p));
  p.client_record_after_server_hello = true;
  EXPECT_TRUE(HandshakeFinal(p));
}

TEST(Finality, Tls13ChangeCipherSpecsAreDummies) {
  HandshakeProgress p;
  p.hello_retry_request = true;  // TLS 1.3 before its ServerHello
  p.ccs[kC] = p.ccs[kS] = true;
  EXPECT_TRUE(Tls13(p));
  EXPECT_FALSE(HandshakeFinal(p));
}

TEST(Finality, FatalAlertIsFinalAnywhere) {
  HandshakeProgress p;
  p.fatal_alert = true;
  EXPECT_TRUE(HandshakeFinal(p));
  p.server_hello = true;
  p.version = 0x0304;
  EXPECT_TRUE(HandshakeFinal(p));
}

TEST(Finality, CloseNeedsAFinFromEachEndOrAnRst) {
  TcpClose c;
  EXPECT_FALSE(c.any());
  c.Add(kTcpFin | kTcpAck, true);
  EXPECT_TRUE(c.any());
  EXPECT_FALSE(c.closed());  // a half-close
  c.Add(kTcpFin | kTcpAck, true);
  EXPECT_FALSE(c.closed());  // the same end again (a retransmission)
  c.Add(kTcpFin | kTcpAck, false);
  EXPECT_TRUE(c.closed());
  TcpClose r;
  r.Add(kTcpRst, false);
  EXPECT_TRUE(r.closed());
}

}  // namespace
}  // namespace pgtlsmon::parser
