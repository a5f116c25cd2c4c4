#include "exporter/record_json.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "parser/tls_names.h"
#include "tests/testing/addresses.h"

namespace pgtlsmon::exporter {
namespace {

using nlohmann::json;
using parser::Finding;
using parser::FindingBit;

using testing::V4;
using testing::V6;

// The spec's example record.
parser::SessionRecord ExampleRecord() {
  parser::SessionRecord r;
  r.ts_us = 1670520174352851;  // 2022-12-08T17:22:54.352851Z
  r.client = {V4("192.168.123.132"), 36934};
  r.server = {V4("52.200.36.167"), 5432};
  r.pg.ssl_request = true;
  r.pg.ssl_response = 'S';
  parser::ClientHelloInfo ch;
  ch.record_version = 0x0301;
  ch.version = 0x0303;
  ch.supported_versions = {0x0304, 0x0303};
  ch.cipher_suites = {0x1302, 0x1303, 0x1301, 0xc02c};
  ch.extensions = {0x0000, 0x000b, 0x000a, 0x0023, 0x0016, 0x0017, 0x000d, 0x002b, 0x002d, 0x0033};
  ch.groups = {0x001d, 0x0017, 0x001e, 0x0019, 0x0018};
  ch.sni = "database-1.example.us-east-1.rds.amazonaws.com";
  ch.ja3 = "a3afc2c46ba4a7d7fbe1cfb7a3031c2f";
  ch.ja4 = "t13d3112h1_e8f1e7e78f70_6bebaf5329ac";
  r.client_hello = ch;
  parser::ServerHelloInfo sh;
  sh.version = 0x0303;
  sh.cipher_suite = 0xc030;
  sh.ja3s = "ec74a5c51106f0419184d0dd08fb05bc";
  r.server_hello = sh;
  r.tls = parser::NegotiatedTls{0x0303, 0xc030};
  parser::CertificateInfo cert;
  cert.subject = "CN=db.example.com";
  cert.issuer = "CN=Example CA,O=Example";
  cert.not_before = 1661126400;  // 2022-08-22T00:00:00Z
  cert.not_after = 1692662400;   // 2023-08-22T00:00:00Z
  cert.key_type = "RSA";
  cert.key_bits = 2048;
  cert.signature_algorithm = "sha256WithRSAEncryption";
  r.certificate = cert;
  r.outcome = parser::Outcome::kTls;
  return r;
}

std::string ToJson(const parser::SessionRecord& r) {
  std::string out;
  AppendRecordJson(r, &out);
  return out;
}

std::vector<std::string> Keys(const json& j) {
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  return keys;
}

TEST(RecordJson, ExampleRecordEveryField) {
  const std::string line = ToJson(ExampleRecord());
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "exactly one line";
  const json j = json::parse(line);

  EXPECT_EQ(j["ts"], "2022-12-08T17:22:54.352851Z");
  EXPECT_EQ(j["client"], json::parse(R"({"ip": "192.168.123.132", "port": 36934})"));
  EXPECT_EQ(j["server"], json::parse(R"({"ip": "52.200.36.167", "port": 5432})"));
  EXPECT_EQ(j["pg"], json::parse(R"({"ssl_request": true, "ssl_response": "S",
      "gssenc_request": false, "gssenc_response": null, "cancel_request": false,
      "direct_tls": false, "startup": null})"));
  const json& ch = j["client_hello"];
  EXPECT_EQ(ch["record_version"], "TLSv1");
  EXPECT_EQ(ch["version"], "TLSv1.2");
  EXPECT_EQ(ch["supported_versions"], json::parse(R"(["TLSv1.3", "TLSv1.2"])"));
  EXPECT_EQ(ch["cipher_suites"], json::parse(R"(["0x1302", "0x1303", "0x1301", "0xc02c"])"));
  EXPECT_EQ(ch["extensions"], json::parse(R"(["0x0000", "0x000b", "0x000a", "0x0023", "0x0016",
      "0x0017", "0x000d", "0x002b", "0x002d", "0x0033"])"));
  EXPECT_EQ(ch["groups"], json::parse(R"(["0x001d", "0x0017", "0x001e", "0x0019", "0x0018"])"));
  EXPECT_EQ(ch["sni"], "database-1.example.us-east-1.rds.amazonaws.com");
  EXPECT_EQ(ch["alpn"], json::array());
  EXPECT_EQ(ch["ja3"], "a3afc2c46ba4a7d7fbe1cfb7a3031c2f");
  EXPECT_EQ(ch["ja4"], "t13d3112h1_e8f1e7e78f70_6bebaf5329ac");
  EXPECT_FALSE(ch.contains("sslv2_cipher_specs"));
  EXPECT_EQ(j["server_hello"], json::parse(R"({"version": "TLSv1.2", "selected_version": null,
      "cipher_suite": "0xc030", "hello_retry_request": false, "alpn": null,
      "ja3s": "ec74a5c51106f0419184d0dd08fb05bc"})"));
  EXPECT_EQ(j["tls"], json::parse(R"({"version": "TLSv1.2", "cipher_suite": "0xc030",
      "cipher": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"})"));
  EXPECT_EQ(j["alerts"], json::array());
  EXPECT_EQ(j["certificate"], json::parse(R"({"subject": "CN=db.example.com",
      "issuer": "CN=Example CA,O=Example", "not_before": "2022-08-22T00:00:00Z",
      "not_after": "2023-08-22T00:00:00Z", "key_type": "RSA", "key_bits": 2048,
      "signature_algorithm": "sha256WithRSAEncryption"})"));
  EXPECT_EQ(j["outcome"], "tls");
  EXPECT_EQ(j["legacy"], false);
  EXPECT_EQ(j["findings"], json::array());
}

TEST(RecordJson, KeyOrderFollowsTheSpec) {
  // nlohmann's ordered_json keeps the order the keys appear in.
  const auto j = nlohmann::ordered_json::parse(ToJson(ExampleRecord()));
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"ts", "client", "server", "pg", "client_hello",
                                            "server_hello", "tls", "alerts", "certificate",
                                            "outcome", "legacy", "findings"}));
  std::vector<std::string> pg;
  for (auto it = j["pg"].begin(); it != j["pg"].end(); ++it) pg.push_back(it.key());
  EXPECT_EQ(
      pg, (std::vector<std::string>{"ssl_request", "ssl_response", "gssenc_request",
                                    "gssenc_response", "cancel_request", "direct_tls", "startup"}));
  std::vector<std::string> ch;
  for (auto it = j["client_hello"].begin(); it != j["client_hello"].end(); ++it) {
    ch.push_back(it.key());
  }
  EXPECT_EQ(ch, (std::vector<std::string>{"record_version", "version", "supported_versions",
                                          "cipher_suites", "extensions", "groups", "sni", "alpn",
                                          "ja3", "ja4"}));
  std::vector<std::string> sh;
  for (auto it = j["server_hello"].begin(); it != j["server_hello"].end(); ++it) {
    sh.push_back(it.key());
  }
  EXPECT_EQ(sh, (std::vector<std::string>{"version", "selected_version", "cipher_suite",
                                          "hello_retry_request", "alpn", "ja3s"}));
  std::vector<std::string> cert;
  for (auto it = j["certificate"].begin(); it != j["certificate"].end(); ++it) {
    cert.push_back(it.key());
  }
  EXPECT_EQ(cert, (std::vector<std::string>{"subject", "issuer", "not_before", "not_after",
                                            "key_type", "key_bits", "signature_algorithm"}));
}

TEST(RecordJson, EmptyRecordHasEveryKeyWithNulls) {
  parser::SessionRecord r;
  r.client = {V4("10.0.0.1"), 50000};
  r.server = {V4("10.0.0.2"), 5432};
  const json j = json::parse(ToJson(r));
  EXPECT_EQ(Keys(j).size(), 12u);
  EXPECT_EQ(j["ts"], "1970-01-01T00:00:00.000000Z");
  EXPECT_TRUE(j["pg"]["ssl_response"].is_null());
  EXPECT_TRUE(j["pg"]["gssenc_response"].is_null());
  EXPECT_TRUE(j["pg"]["startup"].is_null());
  EXPECT_TRUE(j["client_hello"].is_null());
  EXPECT_TRUE(j["server_hello"].is_null());
  EXPECT_TRUE(j["tls"].is_null());
  EXPECT_TRUE(j["certificate"].is_null());
  EXPECT_EQ(j["alerts"], json::array());
  EXPECT_EQ(j["outcome"], "unknown");
  EXPECT_EQ(j["legacy"], false);
}

TEST(RecordJson, PlaintextStartupGssencAndFindings) {
  parser::SessionRecord r;
  r.ts_us = 1700000000000001;
  r.client = {V4("10.0.0.1"), 50000};
  r.server = {V4("10.0.0.2"), 5432};
  r.pg.gssenc_request = true;
  r.pg.gssenc_response = 'N';
  r.pg.ssl_request = true;
  r.pg.ssl_response = 'N';
  parser::StartupInfo s;
  s.protocol_minor = 2;
  s.user = "alice";
  s.application_name = "psql";
  r.pg.startup = s;
  r.outcome = parser::Outcome::kPlaintext;
  r.findings = FindingBit(Finding::kSslRefusedByServer) | FindingBit(Finding::kPlaintextSession) |
               FindingBit(Finding::kWeakCertificateKey) | FindingBit(Finding::kLegacyTlsNegotiated);
  const json j = json::parse(ToJson(r));
  EXPECT_EQ(j["ts"], "2023-11-14T22:13:20.000001Z");
  EXPECT_EQ(j["pg"]["gssenc_response"], "N");
  EXPECT_EQ(j["pg"]["ssl_response"], "N");
  EXPECT_EQ(j["pg"]["startup"], json::parse(R"({"protocol": "3.2", "user": "alice",
      "database": null, "application_name": "psql"})"));
  EXPECT_EQ(j["outcome"], "plaintext");
  // Findings in the closed order of the spec, whatever order the bits were set in.
  EXPECT_EQ(j["findings"], json::parse(R"(["legacy_tls_negotiated", "plaintext_session",
      "ssl_refused_by_server", "weak_certificate_key"])"));
}

TEST(RecordJson, AllFindingsAndOutcomes) {
  parser::SessionRecord r;
  for (unsigned i = 0; i < static_cast<unsigned>(Finding::kCount); ++i) {
    r.findings |= FindingBit(static_cast<Finding>(i));
  }
  const json j = json::parse(ToJson(r));
  ASSERT_EQ(j["findings"].size(), static_cast<size_t>(Finding::kCount));
  EXPECT_EQ(j["findings"][0], "legacy_tls_negotiated");
  EXPECT_EQ(j["findings"][9], "weak_certificate_key");
  for (auto o :
       {parser::Outcome::kTlsFailed, parser::Outcome::kIncomplete, parser::Outcome::kGssenc,
        parser::Outcome::kCancel, parser::Outcome::kSslRefused}) {
    r.outcome = o;
    EXPECT_EQ(json::parse(ToJson(r))["outcome"], std::string(parser::OutcomeName(o)));
  }
}

TEST(RecordJson, Ipv6AddressesInRfc5952Form) {
  parser::SessionRecord r;
  r.client = {V6("2001:0DB8:0000:0000:0000:0000:0000:0001"), 40000};
  r.server = {V6("::ffff:192.0.2.1"), 5432};
  const json j = json::parse(ToJson(r));
  EXPECT_EQ(j["client"]["ip"], "2001:db8::1");
  EXPECT_EQ(j["server"]["ip"], "::ffff:192.0.2.1");
  EXPECT_EQ(j["server"]["port"], 5432);
  r.client.ip = V6("fe80:0:0:1:0:0:0:1");
  EXPECT_EQ(json::parse(ToJson(r))["client"]["ip"], "fe80:0:0:1::1");
}

TEST(RecordJson, TunnelOnlyOnTunnelledConnections) {
  parser::SessionRecord r;
  r.client = {V4("10.0.0.1"), 50000};
  r.server = {V4("10.0.0.2"), 5432};
  EXPECT_FALSE(json::parse(ToJson(r)).contains("tunnel"));
  r.tunnel = parser::TunnelInfo{parser::TunnelType::kVxlan, true, 16777215, V4("192.0.2.1"),
                                V6("2001:db8::9")};
  json j = json::parse(ToJson(r));
  EXPECT_EQ(nlohmann::ordered_json::parse(ToJson(r)).items().begin().key(), "ts");
  EXPECT_EQ(std::prev(nlohmann::ordered_json::parse(ToJson(r)).end()).key(), "tunnel");  // last
  EXPECT_EQ(j["tunnel"], json::parse(R"({"type": "vxlan", "id": 16777215,
      "outer_src": "192.0.2.1", "outer_dst": "2001:db8::9"})"));
  r.tunnel->type = parser::TunnelType::kIpip;
  r.tunnel->has_id = false;
  j = json::parse(ToJson(r));
  EXPECT_EQ(j["tunnel"]["type"], "ipip");
  EXPECT_TRUE(j["tunnel"]["id"].is_null());
  for (auto t :
       {parser::TunnelType::kGeneve, parser::TunnelType::kGre, parser::TunnelType::kErspan}) {
    r.tunnel->type = t;
    EXPECT_EQ(json::parse(ToJson(r))["tunnel"]["type"], parser::TunnelTypeName(t));
  }
}

TEST(RecordJson, AlertsHelloRetryAndUnknownCodes) {
  parser::SessionRecord r;
  parser::ClientHelloInfo ch;
  ch.record_version = 0x0301;
  ch.version = 0x0303;
  ch.supported_versions = {0x7f17, 0x0304};
  ch.alpn = {"postgresql", "h2"};
  r.client_hello = ch;
  parser::ServerHelloInfo sh;
  sh.version = 0x0303;
  sh.selected_version = 0x0304;
  sh.cipher_suite = 0x1301;
  sh.hello_retry_request = true;
  sh.alpn = "postgresql";
  r.server_hello = sh;
  r.tls = parser::NegotiatedTls{0x0304, 0xabcd};  // an unassigned suite
  r.alerts = {{false, 2, 40}, {true, 1, 0}, {true, 2, 255}, {false, 7, 70}};
  r.outcome = parser::Outcome::kTlsFailed;
  const json j = json::parse(ToJson(r));
  EXPECT_EQ(j["client_hello"]["supported_versions"], json::parse(R"(["0x7f17", "TLSv1.3"])"));
  EXPECT_EQ(j["client_hello"]["alpn"], json::parse(R"(["postgresql", "h2"])"));
  EXPECT_TRUE(j["client_hello"]["sni"].is_null());
  EXPECT_EQ(j["server_hello"]["selected_version"], "TLSv1.3");
  EXPECT_EQ(j["server_hello"]["hello_retry_request"], true);
  EXPECT_EQ(j["server_hello"]["alpn"], "postgresql");
  EXPECT_EQ(j["tls"]["version"], "TLSv1.3");
  EXPECT_EQ(j["tls"]["cipher_suite"], "0xabcd");
  EXPECT_EQ(j["tls"]["cipher"], "0xabcd");  // no IANA name: the code, as for versions
  ASSERT_EQ(j["alerts"].size(), 4u);
  EXPECT_EQ(
      j["alerts"][0],
      json::parse(R"({"from": "server", "level": "fatal", "description": "handshake_failure"})"));
  EXPECT_EQ(
      j["alerts"][1],
      json::parse(R"({"from": "client", "level": "warning", "description": "close_notify"})"));
  EXPECT_EQ(j["alerts"][2]["description"], parser::AlertName(255));
  EXPECT_EQ(j["alerts"][3]["level"], "7");
  EXPECT_EQ(j["alerts"][3]["description"], "protocol_version");
}

TEST(RecordJson, HexCodesMatchHexCode) {
  parser::SessionRecord r;
  parser::ClientHelloInfo ch;
  for (uint32_t v : {0x0000u, 0x0001u, 0x00ffu, 0x0a0bu, 0xc02cu, 0xffffu}) {
    ch.cipher_suites.push_back(static_cast<uint16_t>(v));
  }
  r.client_hello = ch;
  const json j = json::parse(ToJson(r));
  ASSERT_EQ(j["client_hello"]["cipher_suites"].size(), ch.cipher_suites.size());
  for (size_t i = 0; i < ch.cipher_suites.size(); ++i) {
    EXPECT_EQ(j["client_hello"]["cipher_suites"][i], parser::HexCode(ch.cipher_suites[i]));
  }
  EXPECT_EQ(j["client_hello"]["cipher_suites"][5], "0xffff");
}

TEST(RecordJson, Sslv2FormatHello) {
  parser::SessionRecord r;
  parser::ClientHelloInfo ch;
  ch.record_version = 0x0002;
  ch.version = 0x0301;
  ch.sslv2_format = true;
  ch.cipher_suites = {0x002f, 0x0005};
  ch.sslv2_cipher_specs = {0x010080, 0x00002f, 0x000005, 0x0700c0};
  r.client_hello = ch;
  const json j = json::parse(ToJson(r));
  EXPECT_EQ(j["client_hello"]["record_version"], "SSLv2");
  EXPECT_EQ(j["client_hello"]["version"], "TLSv1");
  EXPECT_EQ(j["client_hello"]["cipher_suites"], json::parse(R"(["0x002f", "0x0005"])"));
  EXPECT_EQ(j["client_hello"]["sslv2_cipher_specs"],
            json::parse(R"(["0x010080", "0x00002f", "0x000005", "0x0700c0"])"));
}

TEST(RecordJson, StringEscaping) {
  std::string all_controls;
  for (int c = 0; c < 0x20; ++c) all_controls.push_back(static_cast<char>(c));
  const std::vector<std::string> cases = {"plain",
                                          "quote\" backslash\\ slash/",
                                          all_controls,
                                          "tab\there\nnewline\r\x7f",
                                          "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x90\x98",  // é € 🐘
                                          "\xEF\xBF\xBD",  // U+FFFD already
                                          std::string("nul\0inside", 10)};
  for (const std::string& s : cases) {
    std::string out;
    AppendJsonString(s, &out);
    EXPECT_EQ(out.find('\n'), std::string::npos);
    EXPECT_EQ(json::parse(out).get<std::string>(), s) << out;
  }
  std::string out;
  AppendJsonString(std::string("\x01\x1f\b\f", 4), &out);
  EXPECT_EQ(out, R"("\u0001\u001f\b\f")");
}

TEST(RecordJson, InvalidUtf8BecomesReplacementCharacter) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"a\xff"
       "b",
       "a\xEF\xBF\xBD"
       "b"},
      {"\xC3", "\xEF\xBF\xBD"},                                  // truncated sequence
      {"\xC0\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD"},                  // overlong
      {"\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},  // surrogate
      {"\xF4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},  // > U+10FFFF
  };
  for (const auto& [in, want] : cases) {
    std::string out;
    AppendJsonString(in, &out);
    EXPECT_EQ(json::parse(out).get<std::string>(), want);
  }
  // A whole record with hostile strings still parses.
  parser::SessionRecord r;
  parser::ClientHelloInfo ch;
  ch.sni = std::string("evil\"}\n{\xff\x00", 10);
  ch.alpn = {"\x1b[31m"};
  r.client_hello = ch;
  r.pg.ssl_response = '\x80';
  const json j = json::parse(ToJson(r));
  EXPECT_EQ(j["client_hello"]["sni"], std::string("evil\"}\n{\xEF\xBF\xBD\0", 12));
  EXPECT_EQ(j["client_hello"]["alpn"][0], "\x1b[31m");
  EXPECT_EQ(j["pg"]["ssl_response"], "\xEF\xBF\xBD");
}

TEST(RecordJson, Timestamps) {
  std::string s;
  AppendRfc3339Micros(0, &s);
  EXPECT_EQ(s, "1970-01-01T00:00:00.000000Z");
  s.clear();
  AppendRfc3339Micros(951782400999999, &s);  // leap day 2000
  EXPECT_EQ(s, "2000-02-29T00:00:00.999999Z");
  s.clear();
  AppendRfc3339Seconds(253402300799, &s);  // X.509's far future
  EXPECT_EQ(s, "9999-12-31T23:59:59Z");
  s.clear();
  AppendRfc3339Seconds(-1, &s);
  EXPECT_EQ(s, "1969-12-31T23:59:59Z");
  s.clear();
  AppendRfc3339Seconds(-631152000, &s);
  EXPECT_EQ(s, "1950-01-01T00:00:00Z");
  s.clear();
  AppendRfc3339Seconds(4107542400, &s);  // 2100-03-01: 2100 is not a leap year
  EXPECT_EQ(s, "2100-03-01T00:00:00Z");
}

// Past std::chrono's years (+-32767) and before year 0: the same proleptic Gregorian dates as
// before the calendar became std::chrono's (a damaged capture's timestamps can be anything).
TEST(RecordJson, TimestampsFarFromNow) {
  const std::pair<int64_t, const char*> cases[] = {
      {253402300800, "10000-01-01T00:00:00Z"},
      {-62167219200, "0000-01-01T00:00:00Z"},
      {-62167219201, "-0001-12-31T23:59:59Z"},
      {1'000'000'000'000'000, "31690708-07-05T01:46:40Z"},
      {-1'000'000'000'000'000, "-31686769-06-29T22:13:20Z"},
      {int64_t{1} << 62, "146138514283-06-19T07:45:04Z"},
  };
  for (const auto& [secs, want] : cases) {
    std::string s;
    AppendRfc3339Seconds(secs, &s);
    EXPECT_EQ(s, want) << secs;
  }
}

TEST(RecordJson, AppendsWithoutClearing) {
  std::string out = "prefix\n";
  AppendRecordJson(ExampleRecord(), &out);
  AppendRecordJson(parser::SessionRecord(), &out);
  size_t lines = 0;
  for (char c : out) lines += c == '\n' ? 1 : 0;
  EXPECT_EQ(lines, 3u);
  EXPECT_EQ(out.rfind("prefix\n", 0), 0u);
}

TEST(RecordJson, WhatIf) {
  parser::SessionRecord r = ExampleRecord();
  std::string out;
  AppendRecordJson(r, &out);
  EXPECT_FALSE(json::parse(out).contains("what_if"));  // absent without --what-if

  parser::WhatIfPrediction fail;
  fail.policy = "pci";
  fail.outcome = parser::Outcome::kTlsFailed;
  fail.reason = "no_shared_cipher";
  parser::WhatIfPrediction ok;
  ok.policy = "t13";
  ok.outcome = parser::Outcome::kTls;
  ok.version = 0x0304;
  ok.cipher_suite = 0x1302;
  r.what_if = std::vector<parser::WhatIfPrediction>{fail};
  out.clear();
  AppendRecordJson(r, &out);
  json j = json::parse(out);
  EXPECT_EQ(j["what_if"], json::parse(R"({"outcome": "tls_failed", "version": null,
      "cipher_suite": null, "reason": "no_shared_cipher"})"));
  EXPECT_FALSE(j.contains("what_if_policies"));  // one policy: what_if only

  r.what_if = std::vector<parser::WhatIfPrediction>{ok, fail};
  out.clear();
  AppendRecordJson(r, &out);
  j = json::parse(out);
  EXPECT_EQ(j["what_if"], json::parse(R"({"outcome": "tls", "version": "TLSv1.3",
      "cipher_suite": "0x1302", "reason": null})"));
  EXPECT_EQ(j["what_if_policies"]["pci"]["reason"], "no_shared_cipher");
  EXPECT_EQ(j["what_if_policies"]["t13"], j["what_if"]);

  r.what_if = std::vector<parser::WhatIfPrediction>{};  // no ClientHello
  out.clear();
  AppendRecordJson(r, &out);
  j = json::parse(out);
  ASSERT_TRUE(j.contains("what_if"));
  EXPECT_TRUE(j["what_if"].is_null());
}

}  // namespace
}  // namespace pgtlsmon::exporter
