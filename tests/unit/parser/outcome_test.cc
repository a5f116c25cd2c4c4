#include "parser/outcome.h"

#include <gtest/gtest.h>

namespace pgtlsmon::parser {
namespace {

SessionRecord WithHello(uint16_t version) {
  SessionRecord r;
  r.client_hello = ClientHelloInfo{};
  r.client_hello->version = version;
  return r;
}

// session-record.md, "Outcome: the first rule that applies".
TEST(Outcome, ClientHelloRules) {
  std::optional<ServerHelloInfo> no_hrr;
  SessionRecord r = WithHello(0x0303);
  ApplyOutcomeRules(&r, &no_hrr, {});
  EXPECT_EQ(r.outcome, Outcome::kIncomplete);
  ApplyOutcomeRules(&r, &no_hrr, {false, true});
  EXPECT_EQ(r.outcome, Outcome::kTlsFailed);  // closed without a ServerHello
  r.tls = NegotiatedTls{0x0303, 0xc02f};
  ApplyOutcomeRules(&r, &no_hrr, {false, true});
  EXPECT_EQ(r.outcome, Outcome::kTls);
  ApplyOutcomeRules(&r, &no_hrr, {true, false});
  EXPECT_EQ(r.outcome, Outcome::kTlsFailed);  // a fatal alert, even after the ServerHello
  EXPECT_TRUE(r.has_finding(Finding::kHandshakeFailed));
}

TEST(Outcome, PostgresRules) {
  std::optional<ServerHelloInfo> no_hrr;
  SessionRecord r;
  r.pg.ssl_response = 'N';
  ApplyOutcomeRules(&r, &no_hrr, {});
  EXPECT_EQ(r.outcome, Outcome::kSslRefused);
  EXPECT_TRUE(r.has_finding(Finding::kSslRefusedByServer));
  r.pg.startup = StartupInfo{};
  ApplyOutcomeRules(&r, &no_hrr, {});
  EXPECT_EQ(r.outcome, Outcome::kPlaintext);
  EXPECT_TRUE(r.has_finding(Finding::kPlaintextSession));
  SessionRecord g;
  g.pg.gssenc_response = 'G';
  ApplyOutcomeRules(&g, &no_hrr, {});
  EXPECT_EQ(g.outcome, Outcome::kGssenc);
  SessionRecord none;
  ApplyOutcomeRules(&none, &no_hrr, {});
  EXPECT_EQ(none.outcome, Outcome::kUnknown);
}

TEST(Outcome, OnlyAHelloRetryRequestIsReportedAsTheServerHello) {
  std::optional<ServerHelloInfo> hrr = ServerHelloInfo{};
  hrr->cipher_suite = 0x1302;
  SessionRecord r = WithHello(0x0303);
  ApplyOutcomeRules(&r, &hrr, {false, true});
  ASSERT_TRUE(r.server_hello.has_value());
  EXPECT_TRUE(r.server_hello->hello_retry_request);
  EXPECT_EQ(r.server_hello->cipher_suite, 0x1302);
  EXPECT_FALSE(r.tls.has_value());
  EXPECT_EQ(r.outcome, Outcome::kTlsFailed);
}

TEST(Outcome, LegacyAndClientMaxVersion) {
  std::optional<ServerHelloInfo> no_hrr;
  SessionRecord r = WithHello(0x0303);
  r.client_hello->supported_versions = {0x0304, 0x0303, 0x0301, 0x7a7a};
  r.tls = NegotiatedTls{0x0303, 0x000a};  // 3DES
  ApplyOutcomeRules(&r, &no_hrr, {});
  EXPECT_EQ(r.client_hello_max_version, 0x0304);
  EXPECT_FALSE(r.legacy);
  EXPECT_TRUE(r.has_finding(Finding::kClientAcceptsLegacyTls));
  EXPECT_TRUE(r.has_finding(Finding::kWeakCipher));
  SessionRecord old = WithHello(0x0301);
  ApplyOutcomeRules(&old, &no_hrr, {});
  EXPECT_TRUE(old.legacy);
  EXPECT_TRUE(old.has_finding(Finding::kLegacyTlsOfferedOnly));
}

}  // namespace
}  // namespace pgtlsmon::parser
