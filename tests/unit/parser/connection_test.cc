#include "parser/connection.h"

#include <gtest/gtest.h>

#include "parser/certificate.h"
#include "parser/tls_hello.h"
#include "tests/testing/tls_bytes.h"

namespace pgtlsmon::parser {
namespace {

using namespace testing;  // the byte builders of tests/testing/tls_bytes.h
using S = ConnectionState;

constexpr size_t kC = Connection::kClient;
constexpr size_t kS = Connection::kServer;

// One connection fed directly, each direction's bytes in sequence.
class ConnectionTest : public ::testing::Test {
 protected:
  void Send(size_t dir, const Bytes& b) {
    TcpSegment s;
    s.seq = seq_[dir];
    s.payload = b;
    s.payload_wire_len = static_cast<uint32_t>(b.size());
    seq_[dir] += static_cast<uint32_t>(b.size());
    conn_.AddPayload(dir, s);
  }

  ConnectionLimits limits_;
  ParseStats stats_;
  CertificateCache certs_;
  HelloCache hellos_;
  Connection conn_{limits_, &stats_, &certs_, &hellos_};
  uint32_t seq_[2] = {1, 1};
};

TEST_F(ConnectionTest, SslRequestThenTls13) {
  conn_.SetInitialSequence(kC, 1);
  conn_.SetInitialSequence(kS, 1);
  EXPECT_EQ(conn_.state(), S::kAwaitStartup);
  Send(kC, kSslRequest);
  EXPECT_EQ(conn_.state(), S::kAwaitSslResponse);
  Send(kS, {'S'});
  EXPECT_EQ(conn_.state(), S::kTlsHandshake);
  Send(kC, ClientHello(0x0303, 0x1301));
  EXPECT_EQ(conn_.state(), S::kTlsHandshake);
  EXPECT_TRUE(conn_.recognised());
  Send(kS, ServerHello(0x0303, 0x1301, 0x0304));
  EXPECT_EQ(conn_.state(), S::kAwaitClientRecord);
  Send(kS, Alert(2, 40));  // nothing the server sends now is read (it would be encrypted)
  EXPECT_EQ(conn_.state(), S::kAwaitClientRecord);
  Send(kC, ApplicationData(40));
  EXPECT_TRUE(conn_.final());
  const SessionRecord r = conn_.FinalRecord();
  EXPECT_EQ(r.outcome, Outcome::kTls);
  EXPECT_TRUE(r.alerts.empty());
  EXPECT_EQ(stats_.Total(), 0u);
}

TEST_F(ConnectionTest, Tls12IsFinalAfterBothChangeCipherSpecs) {
  Send(kC, ClientHello(0x0303, 0xc02f));  // direct TLS
  EXPECT_EQ(conn_.state(), S::kTlsHandshake);
  Send(kS, ServerHello(0x0303, 0xc02f));
  EXPECT_EQ(conn_.state(), S::kTlsHandshake);
  Send(kC, Ccs());
  EXPECT_EQ(conn_.state(), S::kTlsHandshake);
  Send(kS, Ccs());
  EXPECT_TRUE(conn_.final());
  EXPECT_TRUE(conn_.record().pg.direct_tls);
}

TEST_F(ConnectionTest, GssencRefusedThenStartupMessage) {
  Send(kC, kGssRequest);
  EXPECT_EQ(conn_.state(), S::kAwaitGssencResponse);
  Send(kS, {'N'});
  EXPECT_EQ(conn_.state(), S::kAwaitStartup);
  Send(kC, StartupMessage("carol"));
  EXPECT_TRUE(conn_.final());
  EXPECT_EQ(conn_.FinalRecord().outcome, Outcome::kPlaintext);
}

TEST_F(ConnectionTest, ErrorResponseIsRefusedUntilTheClose) {
  Send(kC, kSslRequest);
  Send(kS, {'E'});
  EXPECT_EQ(conn_.state(), S::kRefused);
  EXPECT_FALSE(conn_.final());
  conn_.MarkClosed();
  EXPECT_EQ(conn_.FinalRecord().outcome, Outcome::kSslRefused);
}

TEST_F(ConnectionTest, NotPostgresIsFinalAtOnce) {
  Send(kC, {'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P', '/', '1', '.', '1', '\r', '\n'});
  EXPECT_TRUE(conn_.final());
  EXPECT_FALSE(conn_.recognised());
  EXPECT_EQ(conn_.FinalRecord().outcome, Outcome::kUnknown);
}

// The handshake did not conclude: a record cut short is counted as bytes not parsed.
TEST_F(ConnectionTest, CutRecordIsCountedAtTheEnd) {
  Bytes hello = ClientHello(0x0303, 0x1301);
  hello.resize(hello.size() - 10);
  Send(kC, hello);
  EXPECT_EQ(conn_.state(), S::kTlsHandshake);
  EXPECT_EQ(conn_.FinalRecord().outcome, Outcome::kUnknown);  // no ClientHello was seen
  EXPECT_EQ(stats_.Get(Stage::kTls, Reason::kTruncated), 1u);
}

}  // namespace
}  // namespace pgtlsmon::parser
