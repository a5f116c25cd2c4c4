#include "exporter/table_report.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

namespace pgtlsmon::exporter {
namespace {

using parser::Finding;
using parser::FindingBit;
using parser::Outcome;

parser::IpAddress Ip(const char* s) {
  parser::IpAddress ip;
  if (inet_pton(AF_INET, s, ip.bytes.data()) != 1) {
    ip.is_v6 = true;
    EXPECT_EQ(inet_pton(AF_INET6, s, ip.bytes.data()), 1) << s;
  }
  return ip;
}

parser::SessionRecord Rec(const char* client, Outcome outcome) {
  parser::SessionRecord r;
  r.ts_us = 1670520174352851;  // 2022-12-08 17:22:54
  r.client = {Ip(client), 40000};
  r.server = {Ip("10.0.0.2"), 5432};
  r.outcome = outcome;
  return r;
}

parser::SessionRecord TlsRec(const char* client, uint16_t version, uint16_t suite) {
  parser::SessionRecord r = Rec(client, Outcome::kTls);
  parser::ClientHelloInfo ch;
  ch.version = 0x0303;
  ch.sni = "db.example.com";
  r.client_hello = ch;
  r.tls = parser::NegotiatedTls{version, suite};
  return r;
}

std::vector<std::string> Lines(const std::string& s) {
  std::vector<std::string> lines;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// In the summary section starting at `from`: the line "  NAME   COUNT"'s position and count.
std::pair<size_t, std::string> SummaryLine(const std::string& out, size_t from,
                                           const std::string& name) {
  const size_t pos = out.find("\n  " + name + " ", from);
  if (pos == std::string::npos) return {pos, ""};
  const size_t end = out.find('\n', pos + 1);
  const std::string line = out.substr(pos + 1, end - pos - 1);
  return {pos, line.substr(line.find_last_of(' ') + 1)};
}

size_t Columns(const std::string& line) {
  size_t n = 0;
  for (char c : line) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

TEST(TableReport, RowsAndSummary) {
  std::string out;
  TableReport t(&out);
  parser::SessionRecord modern = TlsRec("192.0.2.1", 0x0304, 0x1301);
  t.OnRecord(modern);
  t.OnRecord(modern);
  parser::SessionRecord old = TlsRec("192.0.2.7", 0x0301, 0x0005);
  old.legacy = true;
  old.findings = FindingBit(Finding::kLegacyTlsNegotiated) | FindingBit(Finding::kWeakCipher);
  t.OnRecord(old);
  parser::SessionRecord offered = Rec("192.0.2.7", Outcome::kTlsFailed);
  offered.client_hello = parser::ClientHelloInfo{};
  offered.client_hello_max_version = 0x0302;
  offered.legacy = true;
  offered.alerts = {{false, 2, 70}};
  offered.findings =
      FindingBit(Finding::kLegacyTlsOfferedOnly) | FindingBit(Finding::kHandshakeFailed);
  t.OnRecord(offered);
  parser::SessionRecord plain = Rec("198.51.100.3", Outcome::kPlaintext);
  plain.pg.startup = parser::StartupInfo{};
  plain.pg.startup->user = "alice";
  plain.pg.startup->database = "sales";
  plain.findings = FindingBit(Finding::kPlaintextSession);
  t.OnRecord(plain);
  parser::SessionRecord plain2 = plain;
  plain2.pg.startup->user = "bob";
  t.OnRecord(plain2);
  t.Finish();

  const std::vector<std::string> lines = Lines(out);
  ASSERT_GE(lines.size(), 7u);
  EXPECT_EQ(lines[0].rfind("TIME (UTC)", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find("OUTCOME"), std::string::npos);
  EXPECT_NE(lines[0].find("VERSION"), std::string::npos);
  EXPECT_NE(lines[1].find("!FINDING"), std::string::npos);
  // A TLS 1.3 row: time, client, server, outcome, version, cipher; SNI below.
  const std::string row = lines[2] + "\n" + lines[3];
  EXPECT_EQ(row.rfind("2022-12-08 17:22:54 192.0.2.1", 0), 0u) << row;
  for (const char* want :
       {"10.0.0.2:5432", " tls ", "TLSv1.3", "AES_128_GCM_SHA256", "sni=db.example.com"}) {
    EXPECT_NE(row.find(want), std::string::npos) << want << " in " << row;
  }
  EXPECT_NE(lines[6].find(" yes "), std::string::npos) << lines[6];
  EXPECT_NE(lines[6].find("RSA_RC4_128_SHA"), std::string::npos) << lines[6];
  // SNI and findings on a continuation line, indented under CLIENT.
  EXPECT_EQ(lines[7].find_first_not_of(' '), lines[6].find("192.0.2.7")) << lines[7];
  EXPECT_NE(lines[7].find("sni=db.example.com !legacy_tls_negotiated !weak_cipher"),
            std::string::npos)
      << lines[7];
  EXPECT_NE(out.find("alert=protocol_version"), std::string::npos) << out;
  EXPECT_NE(out.find("user=alice db=sales"), std::string::npos) << out;

  for (const std::string& line : lines) EXPECT_LE(Columns(line), 120u) << line;

  EXPECT_NE(out.find("SESSIONS: 6"), std::string::npos) << out;
  const size_t by_outcome = out.find("By outcome");
  ASSERT_NE(by_outcome, std::string::npos);
  EXPECT_EQ(SummaryLine(out, by_outcome, "tls").second, "3") << out;
  EXPECT_EQ(SummaryLine(out, by_outcome, "tls_failed").second, "1") << out;
  EXPECT_EQ(SummaryLine(out, by_outcome, "plaintext").second, "2") << out;
  const size_t by_version = out.find("By negotiated version");
  ASSERT_NE(by_version, std::string::npos);
  const auto v13 = SummaryLine(out, by_version, "TLSv1.3");
  const auto v10 = SummaryLine(out, by_version, "TLSv1");
  const auto none = SummaryLine(out, by_version, "none");
  EXPECT_EQ(v13.second, "2") << out;
  EXPECT_EQ(v10.second, "1") << out;
  EXPECT_EQ(none.second, "3") << out;
  EXPECT_LT(v13.first, v10.first) << "newest first";
  EXPECT_LT(v10.first, none.first);

  const size_t legacy = out.find("Legacy clients");
  ASSERT_NE(legacy, std::string::npos);
  const size_t legacy_row = out.find("192.0.2.7", legacy);
  ASSERT_NE(legacy_row, std::string::npos);
  const std::string legacy_line = out.substr(legacy_row, out.find('\n', legacy_row) - legacy_row);
  EXPECT_NE(legacy_line.find(" 2 "), std::string::npos) << legacy_line;
  EXPECT_NE(legacy_line.find("TLSv1"), std::string::npos) << legacy_line;
  EXPECT_NE(legacy_line.find("TLSv1.1 (offered)"), std::string::npos) << legacy_line;

  const size_t plaintext = out.find("Plaintext clients");
  ASSERT_NE(plaintext, std::string::npos);
  const size_t plain_row = out.find("198.51.100.3", plaintext);
  ASSERT_NE(plain_row, std::string::npos);
  const std::string plain_line = out.substr(plain_row, out.find('\n', plain_row) - plain_row);
  EXPECT_NE(plain_line.find("alice, bob"), std::string::npos) << plain_line;
  EXPECT_EQ(out.find("192.0.2.1", legacy), std::string::npos) << "modern client not listed";
}

TEST(TableReport, LongDetailsWrapWithin120Columns) {
  parser::SessionRecord r = TlsRec("192.0.2.1", 0x0303, 0xcca9);
  r.client_hello->sni = std::string(70, 'h') + ".example.com";
  for (unsigned i = 0; i < static_cast<unsigned>(Finding::kCount); ++i) {
    r.findings |= FindingBit(static_cast<Finding>(i));
  }
  const std::string row = TableReport::FormatRow(r);
  const std::vector<std::string> lines = Lines(row);
  EXPECT_GE(lines.size(), 3u);
  for (const std::string& line : lines) EXPECT_LE(Columns(line), 120u) << line;
  for (size_t i = 1; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i].find_first_not_of(' '), lines[1].find_first_not_of(' ')) << "aligned";
  }
  EXPECT_NE(row.find("!weak_certificate_key"), std::string::npos);
}

TEST(TableReport, HostileStringsAreTerminalSafe) {
  parser::SessionRecord r = Rec("192.0.2.1", Outcome::kPlaintext);
  r.pg.startup = parser::StartupInfo{};
  r.pg.startup->user = "evil\x1b[2J\x07\nname";
  const std::string row = TableReport::FormatRow(r);
  EXPECT_EQ(row.find('\x1b'), std::string::npos);
  EXPECT_EQ(row.find('\x07'), std::string::npos);
  EXPECT_EQ(Lines(row).size(), 2u);
  EXPECT_NE(row.find("user=evil\\x1b[2J\\x07\\x0aname"), std::string::npos) << row;
}

TEST(TableReport, Ipv6AndUnknownValues) {
  parser::SessionRecord r = Rec("2001:db8::7", Outcome::kUnknown);
  r.server = {Ip("2001:db8::5"), 5432};
  r.tls = parser::NegotiatedTls{0x7f1c, 0xabcd};
  const std::string row = TableReport::FormatRow(r);
  EXPECT_NE(row.find("2001:db8::7"), std::string::npos) << row;
  EXPECT_NE(row.find("[2001:db8::5]:5432"), std::string::npos) << row;
  EXPECT_NE(row.find("0x7f1c"), std::string::npos) << row;
  EXPECT_NE(row.find("0xabcd"), std::string::npos) << row;
}

TEST(TableReport, NoSessionsAndFileOutput) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  {
    TableReport t(f);
    t.Finish();
  }
  std::rewind(f);
  std::string content;
  char buf[512];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) content.append(buf, n);
  std::fclose(f);
  EXPECT_NE(content.find("No sessions."), std::string::npos) << content;
  EXPECT_NE(content.find("SESSIONS: 0"), std::string::npos) << content;
}

TEST(TableReport, SummaryClientCap) {
  std::string out;
  TableReport::Options o;
  o.max_summary_clients = 2;
  TableReport t(&out, o);
  for (const char* c : {"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.3"}) {
    parser::SessionRecord r = Rec(c, Outcome::kPlaintext);
    t.OnRecord(r);
  }
  t.Finish();
  EXPECT_NE(out.find("Plaintext clients (StartupMessage in clear) (2+)"), std::string::npos) << out;
  EXPECT_NE(out.find("... and 2 more sessions"), std::string::npos) << out;
}

TEST(TableReport, WhatIfSectionPerPolicy) {
  TableReport::Options o;
  o.what_if_policies = {{"pci", "min TLSv1.2"}, {"t13", "min TLSv1.3"}};
  o.what_if_security_level = 2;
  std::string out;
  TableReport t(&out, o);
  const auto predict = [](parser::SessionRecord* r, Outcome pci, uint16_t pci_version, Outcome t13,
                          bool assumed) {
    parser::WhatIfPrediction a;
    a.policy = "pci";
    a.outcome = pci;
    a.version = pci_version;
    a.cipher_suite = 0xc030;
    a.reason = pci == Outcome::kTlsFailed ? "protocol_version" : "";
    a.certificate_key = "rsa2048";
    a.certificate_assumed = assumed;
    parser::WhatIfPrediction b = a;
    b.policy = "t13";
    b.outcome = t13;
    b.version = t13 == Outcome::kTls ? 0x0304 : 0;
    b.cipher_suite = 0x1302;
    b.reason = t13 == Outcome::kTlsFailed ? "protocol_version" : "";
    r->what_if = std::vector<parser::WhatIfPrediction>{a, b};
  };
  parser::SessionRecord old = TlsRec("10.0.0.5", 0x0301, 0xc014);
  old.pg.startup = parser::StartupInfo{};
  old.pg.startup->user = "report";
  old.pg.startup->application_name = "legacy-app";
  predict(&old, Outcome::kTlsFailed, 0, Outcome::kTlsFailed, false);
  t.OnRecord(old);
  parser::SessionRecord tls12 = TlsRec("10.0.0.6", 0x0303, 0xc030);
  predict(&tls12, Outcome::kTls, 0x0303, Outcome::kTlsFailed, false);
  t.OnRecord(tls12);
  parser::SessionRecord tls13 = TlsRec("10.0.0.7", 0x0303, 0xc02f);
  predict(&tls13, Outcome::kTls, 0x0303, Outcome::kTls, true);
  t.OnRecord(tls13);
  parser::SessionRecord plain = Rec("10.0.0.8", Outcome::kPlaintext);
  plain.what_if.emplace();
  t.OnRecord(plain);
  t.Finish();
  const size_t pci = out.find("What if: policy pci\n  Settings: min TLSv1.2\n");
  const size_t t13 = out.find("What if: policy t13\n  Settings: min TLSv1.3\n");
  ASSERT_NE(pci, std::string::npos) << out;
  ASSERT_NE(t13, std::string::npos) << out;
  const std::string pci_part = out.substr(pci, t13 - pci);
  const std::string t13_part = out.substr(t13);
  EXPECT_NE(
      pci_part.find("Assumed: OpenSSL security level 2; server key rsa2048 (seen in the capture); "
                    "rsa2048 before one was seen"),
      std::string::npos)
      << pci_part;
  EXPECT_NE(pci_part.find("Verdict: 1 of 3 clients would break (1 of 3 sessions); 1 more"),
            std::string::npos)
      << pci_part;
  EXPECT_NE(pci_part.find("protocol_version (now TLSv1)"), std::string::npos) << pci_part;
  EXPECT_NE(pci_part.find("legacy-app user=report"), std::string::npos) << pci_part;
  EXPECT_NE(pci_part.find("TLSv1.2 ECDHE_RSA_AES_128_GCM_SHA256 -> TLSv1.2 "
                          "ECDHE_RSA_AES_256_GCM_SHA384"),
            std::string::npos)
      << pci_part;
  EXPECT_NE(t13_part.find("Verdict: 2 of 3 clients would break (2 of 3 sessions)"),
            std::string::npos)
      << t13_part;
  for (const std::string& line : Lines(out)) EXPECT_LE(Columns(line), 120u) << line;
}

}  // namespace
}  // namespace pgtlsmon::exporter
