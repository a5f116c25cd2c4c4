#include "parser/flow_tracker.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "parser/tls_names.h"
#include "tests/testing/tls_bytes.h"

namespace pgtlsmon::parser {
namespace {

using testing::Alert;
using testing::ApplicationData;
using testing::Bytes;
using testing::Ccs;
using testing::ClientHello;
using testing::Handshake;
using testing::kGssRequest;
using testing::kSslRequest;
using testing::Put;
using testing::PutU24;
using testing::Record;
using testing::ServerHello;
using testing::StartupMessage;

IpAddress V4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  IpAddress ip;
  ip.bytes[0] = a, ip.bytes[1] = b, ip.bytes[2] = c, ip.bytes[3] = d;
  return ip;
}

// A Certificate handshake record (TLS 1.2) carrying one DER certificate.
Bytes CertificateRecord(const Bytes& der) {
  Bytes body;
  PutU24(&body, der.size() + 3);  // certificate_list length
  PutU24(&body, der.size());      // one certificate
  Put(&body, der);
  return Record(22, 0x0303, Handshake(11, body));
}

// RSA-1024, CN=weak.example, valid 2026-11-27T19:47:55Z to 2026-11-28T19:47:55Z.
Bytes WeakCertificateDer() {
  std::ifstream f(
      std::string(PGTLS_SOURCE_DIR) + "/tests/unit/parser/testdata/tls/weak_rsa1024.der",
      std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

// Drives one connection between 10.0.0.1:40000 and 10.0.0.2:5432.
class Conn {
 public:
  Conn(FlowTracker* t, uint16_t cport = 40000, uint64_t ts = 1'700'000'000'000'000,
       uint32_t isn = 1000)
      : t_(t), cport_(cport), ts_(ts), cseq_(isn) {}
  void Syn() {
    Send(true, {}, kTcpSyn);
    Send(false, {}, kTcpSyn | kTcpAck);
  }
  // SYN, SSLRequest, 'S', ClientHello.
  void UpToClientHello(uint16_t suite = 0x1301) {
    Syn();
    Client(kSslRequest);
    Server({'S'});
    Client(ClientHello(0x0303, suite));
  }
  void Client(const Bytes& b, uint8_t flags = kTcpAck | kTcpPsh) { Send(true, b, flags); }
  void Server(const Bytes& b, uint8_t flags = kTcpAck | kTcpPsh) { Send(false, b, flags); }
  void Fin() {
    Send(true, {}, kTcpFin | kTcpAck);
    Send(false, {}, kTcpFin | kTcpAck);
  }
  void Send(bool from_client, const Bytes& b, uint8_t flags) {
    TcpSegment s;
    s.src = from_client ? V4(10, 0, 0, 1) : V4(10, 0, 0, 2);
    s.dst = from_client ? V4(10, 0, 0, 2) : V4(10, 0, 0, 1);
    s.sport = from_client ? cport_ : 5432;
    s.dport = from_client ? 5432 : cport_;
    uint32_t& seq = from_client ? cseq_ : sseq_;
    s.seq = seq;
    s.flags = flags;
    s.payload = b;
    s.payload_wire_len = static_cast<uint32_t>(b.size());
    seq += static_cast<uint32_t>(b.size()) + ((flags & (kTcpSyn | kTcpFin)) ? 1 : 0);
    if (mirror_ && mirror_first_) Copy(s);
    t_->OnSegment(s, ts_ += 1000);
    if (mirror_ && !mirror_first_) Copy(s);
  }
  // Every segment is also seen as a copy in `tunnel` (a mirror session), before or after the
  // original.
  void Mirror(const TunnelInfo& tunnel, bool copy_first) {
    mirror_ = tunnel;
    mirror_first_ = copy_first;
  }

 private:
  FlowTracker* t_;
  uint16_t cport_;
  uint64_t ts_;
  uint32_t cseq_;
  uint32_t sseq_ = 5000;
  std::optional<TunnelInfo> mirror_;
  bool mirror_first_ = false;

  void Copy(TcpSegment s) {
    s.tunnel = *mirror_;
    t_->OnSegment(s, ts_ += 10);
  }
};

class FlowTrackerTest : public ::testing::Test {
 protected:
  FlowTracker& Make(const FlowTrackerConfig& cfg = {}) {
    tracker_ = std::make_unique<FlowTracker>(
        cfg, [this](SessionRecord&& r) { records_.push_back(std::move(r)); });
    return *tracker_;
  }
  std::unique_ptr<FlowTracker> tracker_;
  std::vector<SessionRecord> records_;
};

TEST_F(FlowTrackerTest, Plaintext) {
  auto& t = Make();
  Conn c(&t);
  c.Syn();
  c.Client(StartupMessage("alice"));
  ASSERT_EQ(records_.size(), 1u);  // final at the StartupMessage
  const auto& r = records_[0];
  EXPECT_EQ(r.outcome, Outcome::kPlaintext);
  EXPECT_EQ(r.pg.startup->user, "alice");
  EXPECT_EQ(FormatIp(r.client.ip), "10.0.0.1");
  EXPECT_EQ(r.client.port, 40000);
  EXPECT_EQ(r.server.port, 5432);
  EXPECT_TRUE(r.has_finding(Finding::kPlaintextSession));
  EXPECT_EQ(t.active_flows(), 1u);  // a tombstone: later packets are skipped
  c.Server(Bytes(100, 'R'));
  EXPECT_EQ(t.stats().skipped_segments, 1u);
  t.Finish();
  EXPECT_EQ(records_.size(), 1u);
}

TEST_F(FlowTrackerTest, RefusedThenPlaintext) {
  auto& t = Make();
  Conn c(&t);
  c.Syn();
  c.Client(kSslRequest);
  c.Server({'N'});
  c.Client(StartupMessage("bob"));
  ASSERT_EQ(records_.size(), 1u);
  EXPECT_TRUE(records_[0].pg.ssl_request);
  EXPECT_EQ(records_[0].pg.ssl_response, 'N');
  EXPECT_EQ(records_[0].outcome, Outcome::kPlaintext);
  EXPECT_TRUE(records_[0].has_finding(Finding::kSslRefusedByServer));
}

TEST_F(FlowTrackerTest, RefusedAndClosed) {
  auto& t = Make();
  Conn c(&t);
  c.Syn();
  c.Client(kSslRequest);
  c.Server({'N'});
  c.Fin();
  ASSERT_EQ(records_.size(), 1u);
  EXPECT_EQ(records_[0].outcome, Outcome::kSslRefused);
}

TEST_F(FlowTrackerTest, GssThenSslThenTls13) {
  auto& t = Make();
  Conn c(&t);
  c.Syn();
  c.Client(kGssRequest);
  c.Server({'N'});
  c.Client(kSslRequest);
  c.Server({'S'});
  c.Client(ClientHello(0x0303, 0x1301));
  EXPECT_TRUE(records_.empty());
  c.Server(ServerHello(0x0303, 0xc02f));
  EXPECT_TRUE(records_.empty());  // TLS 1.2: final only after both ChangeCipherSpecs
  c.Client(Ccs());
  c.Server(Ccs());
  ASSERT_EQ(records_.size(), 1u);
  const auto& r = records_[0];
  EXPECT_TRUE(r.pg.gssenc_request);
  EXPECT_EQ(r.pg.gssenc_response, 'N');
  EXPECT_EQ(r.pg.ssl_response, 'S');
  EXPECT_FALSE(r.pg.direct_tls);
  EXPECT_EQ(r.outcome, Outcome::kTls);
  EXPECT_EQ(r.tls->version, 0x0303);
  EXPECT_EQ(r.tls->cipher_suite, 0xc02f);
  EXPECT_FALSE(r.legacy);
}

// A TLS 1.3 server's first flight: ServerHello, its dummy ChangeCipherSpec, encrypted records.
Bytes Tls13ServerFlight() {
  Bytes flight = ServerHello(0x0303, 0x1301, 0x0304);
  Put(&flight, Ccs());
  Put(&flight, ApplicationData(900));
  return flight;
}

// session-record.md, "When a record is final" (b): a TLS 1.3 record stays open after the
// ServerHello until the client's first record after it, normally its ChangeCipherSpec.
TEST_F(FlowTrackerTest, Tls13IsFinalAtTheClientsFirstRecordAfterTheServerHello) {
  auto& t = Make();
  std::vector<FlowKey> finals;
  t.set_on_final([&finals](const FlowKey& k) { finals.push_back(k); });
  Conn c(&t);
  c.UpToClientHello();
  c.Server(Tls13ServerFlight());
  EXPECT_TRUE(records_.empty());  // still open: the client has not answered
  EXPECT_TRUE(finals.empty());
  c.Server(ApplicationData(300));  // more of the server's encrypted flight changes nothing
  EXPECT_TRUE(records_.empty());
  Bytes answer = Ccs();
  Put(&answer, ApplicationData(53));  // the client's encrypted Finished
  c.Client(answer);
  ASSERT_EQ(records_.size(), 1u);
  EXPECT_EQ(finals.size(), 1u);
  const auto& r = records_[0];
  EXPECT_EQ(r.outcome, Outcome::kTls);
  EXPECT_EQ(r.tls->version, 0x0304);
  EXPECT_TRUE(r.alerts.empty());
  c.Client(ApplicationData(100));
  EXPECT_EQ(t.stats().skipped_segments, 1u);  // a tombstone from here on
}

// A client that cannot use the TLS 1.3 ServerHello (testssl probing, an illegal parameter)
// answers with a fatal alert in clear: the record is tls_failed (before the change it was
// final, and `tls`, at the ServerHello).
TEST_F(FlowTrackerTest, Tls13ClientFatalAlertAfterTheServerHelloFails) {
  auto& t = Make();
  Conn c(&t);
  c.UpToClientHello();
  c.Server(Tls13ServerFlight());
  EXPECT_TRUE(records_.empty());
  c.Client(Alert(2, 47));  // illegal_parameter
  ASSERT_EQ(records_.size(), 1u);
  const auto& r = records_[0];
  EXPECT_EQ(r.outcome, Outcome::kTlsFailed);
  ASSERT_TRUE(r.tls.has_value());  // the ServerHello still fills `tls`
  EXPECT_EQ(r.tls->version, 0x0304);
  ASSERT_EQ(r.alerts.size(), 1u);
  EXPECT_TRUE(r.alerts[0].from_client);
  EXPECT_EQ(r.alerts[0].description, 47);
  EXPECT_TRUE(r.has_finding(Finding::kHandshakeFailed));
}

// The capture ends (or the connection closes) after a TLS 1.3 ServerHello: still `tls`.
TEST_F(FlowTrackerTest, Tls13CutAfterTheServerHelloIsStillTls) {
  auto& t = Make();
  Conn a(&t, 40001);
  a.UpToClientHello();
  a.Server(ServerHello(0x0303, 0x1301, 0x0304));
  a.Fin();
  ASSERT_EQ(records_.size(), 1u);
  EXPECT_EQ(records_[0].outcome, Outcome::kTls);
  Conn b(&t, 40002);
  b.Syn();
  b.Client(ClientHello(0x0303, 0x1301));
  b.Server(ServerHello(0x0303, 0x1301, 0x0304));
  t.Finish();
  ASSERT_EQ(records_.size(), 2u);
  EXPECT_EQ(records_[1].outcome, Outcome::kTls);
  EXPECT_EQ(t.parse_stats().Total(), 0u);
}

TEST_F(FlowTrackerTest, GssAccepted) {
  auto& t = Make();
  Conn c(&t);
  c.Syn();
  c.Client(kGssRequest);
  c.Server({'G'});
  ASSERT_EQ(records_.size(), 1u);
  EXPECT_EQ(records_[0].outcome, Outcome::kGssenc);
}

TEST_F(FlowTrackerTest, LegacyNegotiatedWithWeakCipher) {
  auto& t = Make();
  Conn c(&t);
  c.Syn();
  c.Client(kSslRequest);
  c.Server({'S'});
  c.Client(ClientHello(0x0301, 0x000a));
  c.Server(ServerHello(0x0301, 0x000a));  // TLS_RSA_WITH_3DES_EDE_CBC_SHA
  c.Fin();
  ASSERT_EQ(records_.size(), 1u);
  const auto& r = records_[0];
  EXPECT_EQ(r.outcome, Outcome::kTls);
  EXPECT_TRUE(r.legacy);
  EXPECT_TRUE(r.has_finding(Finding::kLegacyTlsNegotiated));
  EXPECT_TRUE(r.has_finding(Finding::kWeakCipher));
  EXPECT_EQ(r.client_hello_max_version, 0x0301);
}

TEST_F(FlowTrackerTest, CertificateFindings) {
  const Bytes der = WeakCertificateDer();
  ASSERT_GT(der.size(), 400u);
  // Inside the validity (2026-11-28T19:43Z), after it (2030), before it (2023).
  for (const auto& [ts, expired] : {std::pair<uint64_t, bool>{1'795'895'000'000'000, false},
                                    std::pair<uint64_t, bool>{1'900'000'000'000'000, true},
                                    std::pair<uint64_t, bool>{1'700'000'000'000'000, true}}) {
    records_.clear();
    auto& t = Make();
    Conn c(&t, 40000, ts);
    c.Syn();
    c.Client(kSslRequest);
    c.Server({'S'});
    c.Client(ClientHello(0x0303, 0x009c));
    Bytes flight = ServerHello(0x0303, 0x009c);
    Put(&flight, CertificateRecord(der));
    c.Server(flight);
    c.Client(Ccs());
    c.Server(Ccs());
    ASSERT_EQ(records_.size(), 1u);
    const auto& r = records_[0];
    ASSERT_TRUE(r.certificate.has_value());
    EXPECT_EQ(r.certificate->subject, "CN=weak.example");
    EXPECT_EQ(r.certificate->key_type, "RSA");
    EXPECT_EQ(r.certificate->key_bits, 1024);
    EXPECT_TRUE(r.has_finding(Finding::kWeakCertificateKey));
    EXPECT_EQ(r.has_finding(Finding::kCertificateExpired), expired) << "ts " << ts;
  }
}

TEST_F(FlowTrackerTest, ClientAcceptsLegacy) {
  auto& t = Make();
  Conn c(&t);
  c.Syn();
  c.Client(kSslRequest);
  c.Server({'S'});
  // A TLS 1.2 hello whose supported_versions also lists TLS 1.0 (0x0301).
  c.Client(ClientHello(0x0303, 0xc02f,
                       {0x00, 0x2b, 0x00, 0x07,  // supported_versions, 7 bytes
                        0x06, 0x03, 0x04, 0x03, 0x03, 0x03, 0x01}));
  c.Server(ServerHello(0x0303, 0xc02f));
  c.Client(Ccs());
  c.Server(Ccs());
  ASSERT_EQ(records_.size(), 1u);
  EXPECT_TRUE(records_[0].has_finding(Finding::kClientAcceptsLegacyTls));
  EXPECT_FALSE(records_[0].legacy);
  EXPECT_EQ(records_[0].client_hello_max_version, 0x0304);
}

TEST_F(FlowTrackerTest, FatalAlertFails) {
  auto& t = Make();
  Conn c(&t);
  c.Syn();
  c.Client(kSslRequest);
  c.Server({'S'});
  c.Client(ClientHello(0x0302, 0x002f));
  c.Server(Alert(2, 70));  // protocol_version
  ASSERT_EQ(records_.size(), 1u);
  const auto& r = records_[0];
  EXPECT_EQ(r.outcome, Outcome::kTlsFailed);
  ASSERT_EQ(r.alerts.size(), 1u);
  EXPECT_FALSE(r.alerts[0].from_client);
  EXPECT_EQ(r.alerts[0].description, 70);
  EXPECT_TRUE(r.legacy);  // only TLS 1.1 offered
  EXPECT_TRUE(r.has_finding(Finding::kLegacyTlsOfferedOnly));
  EXPECT_TRUE(r.has_finding(Finding::kHandshakeFailed));
}

// Every segment seen twice (the original and a mirror copy, SYN, FIN and alert included) is
// one connection with the record of the bare one: copies are duplicates by sequence number.
TEST_F(FlowTrackerTest, MirroredCopiesAreOneConnection) {
  const TunnelInfo vxlan{TunnelType::kVxlan, true, 4242, V4(192, 0, 2, 1), V4(192, 0, 2, 2)};
  std::vector<SessionRecord> got[3];
  for (int variant = 0; variant < 3; ++variant) {  // bare, copy after, copy before
    records_.clear();
    auto& t = Make();
    Conn c(&t);
    if (variant > 0) c.Mirror(vxlan, variant == 2);
    c.Syn();
    c.Client(kSslRequest);
    c.Server({'S'});
    c.Client(ClientHello(0x0303, 0x002f));
    c.Server(Alert(2, 40));
    c.Fin();
    t.Finish();
    got[variant] = std::move(records_);
    ASSERT_EQ(got[variant].size(), 1u) << variant;
    const SessionRecord& r = got[variant][0];
    EXPECT_EQ(r.outcome, Outcome::kTlsFailed);
    ASSERT_EQ(r.alerts.size(), 1u) << variant;  // not doubled
    EXPECT_EQ(r.client_hello->cipher_suites, got[0][0].client_hello->cipher_suites);
    EXPECT_EQ(r.findings, got[0][0].findings);
    EXPECT_EQ(r.client, got[0][0].client);
    EXPECT_EQ(r.server, got[0][0].server);
  }
  // The tunnel is the first packet's: none when the original came first.
  EXPECT_FALSE(got[0][0].tunnel.has_value());
  EXPECT_FALSE(got[1][0].tunnel.has_value());
  ASSERT_TRUE(got[2][0].tunnel.has_value());
  EXPECT_EQ(*got[2][0].tunnel, vxlan);
}

TEST_F(FlowTrackerTest, ClosedWithoutServerHelloFails_CaptureEndIsIncomplete) {
  auto& t = Make();
  Conn a(&t, 40001);
  a.Syn();
  a.Client(kSslRequest);
  a.Server({'S'});
  a.Client(ClientHello(0x0303, 0x1301));
  a.Fin();
  Conn b(&t, 40002);
  b.Syn();
  b.Client(kSslRequest);
  b.Server({'S'});
  b.Client(ClientHello(0x0303, 0x1301));
  t.Finish();
  ASSERT_EQ(records_.size(), 2u);
  EXPECT_EQ(records_[0].outcome, Outcome::kTlsFailed);
  EXPECT_EQ(records_[1].outcome, Outcome::kIncomplete);
}

TEST_F(FlowTrackerTest, DirectTls) {
  auto& t = Make();
  Conn c(&t);
  c.Syn();
  c.Client(ClientHello(0x0303, 0x1301));
  c.Fin();
  ASSERT_EQ(records_.size(), 1u);
  EXPECT_TRUE(records_[0].pg.direct_tls);
  EXPECT_FALSE(records_[0].pg.ssl_request);
  EXPECT_EQ(records_[0].outcome, Outcome::kTlsFailed);
}

TEST_F(FlowTrackerTest, DirectTlsWithSslv2FormatHello) {
  auto& t = Make();
  Conn c(&t);
  c.Syn();
  // RFC 5246 E.2: 2-byte header with the high bit set, msg_type 1, version 3.1, specs.
  c.Client({0x80, 0x1f,                          // length 31
            0x01,                                // msg_type: client_hello
            0x03, 0x01,                          // version: TLS 1.0
            0x00, 0x06, 0x00, 0x00, 0x00, 0x10,  // spec, session id, challenge lengths
            0x00, 0x00, 0x2f, 0x01, 0x00, 0x80,  // TLS_RSA_WITH_AES_128_CBC_SHA, SSL_CK_RC4
            0,    1,    2,    3,    4,    5,    6, 7, 8, 9, 10, 11, 12, 13, 14, 15});  // challenge
  c.Fin();
  ASSERT_EQ(records_.size(), 1u);
  const auto& r = records_[0];
  EXPECT_TRUE(r.pg.direct_tls);
  ASSERT_TRUE(r.client_hello.has_value());
  EXPECT_TRUE(r.client_hello->sslv2_format);
  EXPECT_EQ(r.client_hello->version, 0x0301);
  EXPECT_EQ(r.client_hello->cipher_suites, std::vector<uint16_t>{0x002f});
  EXPECT_EQ(r.outcome, Outcome::kTlsFailed);
  EXPECT_TRUE(r.legacy);
}

TEST_F(FlowTrackerTest, InjectedBytesAfterSslResponse) {
  auto& t = Make();
  Conn c(&t);
  c.Syn();
  Bytes inj = kSslRequest;
  Put(&inj, {'Q', 0, 0, 0, 13, 's', 'e', 'l', 'e', 'c', 't', ' ', '1', 0});  // CVE-2021-23214
  c.Client(inj);
  c.Server({'S'});
  c.Fin();
  ASSERT_EQ(records_.size(), 1u);
  EXPECT_TRUE(records_[0].has_finding(Finding::kSslInjectionBytes));
}

TEST_F(FlowTrackerTest, CancelRequest) {
  auto& t = Make();
  Conn c(&t);
  c.Syn();
  c.Client({0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 1, 2, 3, 4, 5, 6});
  ASSERT_EQ(records_.size(), 1u);
  EXPECT_EQ(records_[0].outcome, Outcome::kCancel);
  EXPECT_TRUE(records_[0].pg.cancel_request);
}

TEST_F(FlowTrackerTest, RecordsKeepFirstPacketOrder) {
  auto& t = Make();
  Conn a(&t, 40001);
  Conn b(&t, 40002);
  a.Syn();
  b.Syn();
  b.Client(StartupMessage("second"));  // final first
  EXPECT_TRUE(records_.empty());       // waits for the older connection
  a.Client(StartupMessage("first"));
  ASSERT_EQ(records_.size(), 2u);
  EXPECT_EQ(records_[0].pg.startup->user, "first");
  EXPECT_EQ(records_[1].pg.startup->user, "second");
}

TEST_F(FlowTrackerTest, UnorderedOutputForLive) {
  FlowTrackerConfig cfg;
  cfg.ordered_output = false;
  auto& t = Make(cfg);
  Conn a(&t, 40001);
  Conn b(&t, 40002);
  a.Syn();
  b.Syn();
  b.Client(StartupMessage("second"));
  ASSERT_EQ(records_.size(), 1u);
  EXPECT_EQ(records_[0].pg.startup->user, "second");
}

TEST_F(FlowTrackerTest, NoPayloadNoRecord) {
  auto& t = Make();
  Conn c(&t);
  c.Syn();
  c.Fin();
  t.Finish();
  EXPECT_TRUE(records_.empty());
}

TEST_F(FlowTrackerTest, PortReuseGetsItsOwnRecord) {
  auto& t = Make();
  Conn a(&t, 40001);
  a.Syn();
  a.Client(StartupMessage("one"));
  a.Fin();
  // The same 4-tuple again, with a new initial sequence number: a new connection.
  Conn b(&t, 40001, 1'700'000'001'000'000, 777777);
  b.Syn();
  b.Client(StartupMessage("two"));
  t.Finish();
  ASSERT_EQ(records_.size(), 2u);
  EXPECT_EQ(records_[0].pg.startup->user, "one");
  EXPECT_EQ(records_[1].pg.startup->user, "two");
}

TEST_F(FlowTrackerTest, AnyPortReportsOnlyRecognisedConnections) {
  FlowTrackerConfig cfg;
  cfg.any_port = true;
  auto& t = Make(cfg);
  Conn pg(&t, 40001);
  pg.Syn();
  pg.Client(StartupMessage("x"));
  Conn http(&t, 40002);
  http.Syn();
  http.Client({'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P', '/', '1', '.', '1'});
  t.Finish();
  ASSERT_EQ(records_.size(), 1u);
  EXPECT_EQ(records_[0].pg.startup->user, "x");
}

TEST_F(FlowTrackerTest, AnyPortNeverReportsUnknown) {
  FlowTrackerConfig cfg;
  cfg.any_port = true;
  auto& t = Make(cfg);
  Conn c(&t, 40001);
  c.Syn();
  c.Client(kSslRequest);  // PostgreSQL, but the capture ends before any answer
  t.Finish();
  EXPECT_TRUE(records_.empty());
}

TEST_F(FlowTrackerTest, OtherPortsAreNotTracked) {
  FlowTrackerConfig cfg;
  cfg.ports = {6432};
  auto& t = Make(cfg);
  Conn c(&t);  // port 5432
  c.Syn();
  c.Client(StartupMessage("x"));
  t.Finish();
  EXPECT_TRUE(records_.empty());
  EXPECT_EQ(t.stats().skipped_segments, 3u);
}

TEST_F(FlowTrackerTest, TableFullEvictsOldestAndCounts) {
  FlowTrackerConfig cfg;
  cfg.max_flows = 16;
  auto& t = Make(cfg);
  for (uint16_t p = 0; p < 40; ++p) {
    Conn c(&t, static_cast<uint16_t>(30000 + p));
    c.Syn();
    c.Client(kSslRequest);  // each waits for a reply that never comes
  }
  EXPECT_LE(t.active_flows(), 16u);
  EXPECT_EQ(t.stats().evictions[static_cast<size_t>(EvictionReason::kTableFull)], 24u);
  t.Finish();
  EXPECT_EQ(records_.size(), 40u);  // evicted connections still get their records
  EXPECT_EQ(records_.front().client.port, 30000);
}

// A FIN from one end is a half-close: the other end may go on sending, so the tombstone keeps
// the idle timeout. The tombstone used to take any FIN, from either end, for the client's and
// the connection for closed: after 30 s of silence it left, and the client's next bytes made a
// second record (outcome unknown) for the same connection.
TEST_F(FlowTrackerTest, HalfClosedTombstoneStays) {
  auto& t = Make();
  Conn c(&t, 40000, 1'700'000'000'000'000);
  c.Syn();
  c.Client(StartupMessage("alice"));
  ASSERT_EQ(records_.size(), 1u);
  c.Server({}, kTcpFin | kTcpAck);                              // the server half-closes
  Conn later(&t, 40000, 1'700'000'040'000'000, 1000 + 1 + 20);  // 40 s on, same connection
  later.Client(Bytes(20, 'Q'));
  t.Finish();
  EXPECT_EQ(records_.size(), 1u);
  EXPECT_EQ(t.stats().skipped_segments, 2u);
}

// Closed both ways: the tombstone leaves after 30 s, and a later SYN-less packet on the same
// addresses is a connection of its own.
TEST_F(FlowTrackerTest, ClosedTombstoneLeavesAfterThirtySeconds) {
  auto& t = Make();
  Conn c(&t, 40000, 1'700'000'000'000'000);
  c.Syn();
  c.Client(StartupMessage("alice"));
  c.Fin();
  EXPECT_EQ(t.active_flows(), 1u);
  t.ExpireIdle(1'700'000'040'000'000);
  EXPECT_EQ(t.active_flows(), 0u);
  EXPECT_EQ(t.stats().evictions[static_cast<size_t>(EvictionReason::kIdleTimeout)], 0u);
}

TEST_F(FlowTrackerTest, IdleTimeoutEvicts) {
  FlowTrackerConfig cfg;
  cfg.idle_timeout_us = 10'000'000;
  auto& t = Make(cfg);
  Conn c(&t);
  c.Syn();
  c.Client(kSslRequest);
  t.ExpireIdle(1'700'000'100'000'000);
  EXPECT_EQ(t.active_flows(), 0u);
  EXPECT_EQ(t.stats().evictions[static_cast<size_t>(EvictionReason::kIdleTimeout)], 1u);
  ASSERT_EQ(records_.size(), 1u);
  EXPECT_EQ(records_[0].outcome, Outcome::kUnknown);
}

}  // namespace
}  // namespace pgtlsmon::parser
