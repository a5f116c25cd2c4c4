#include "exporter/metrics.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "parser/tls_names.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "tests/testing/addresses.h"
#include "tests/testing/run_shell.h"

namespace pgtlsmon::exporter {
namespace {

using pgtlsmon::testing::RunShell;
using pgtlsmon::testing::ShellResult;

using parser::Finding;
using parser::FindingBit;
using parser::Outcome;
using LabelMap = std::map<std::string, std::string>;

using testing::V4;
using testing::V6;

parser::SessionRecord Base(const char* client = "10.0.0.1", const char* server = "10.0.0.2") {
  parser::SessionRecord r;
  r.ts_us = 1700000000000000;
  r.client = {V4(client), 40000};
  r.server = {V4(server), 5432};
  return r;
}

parser::SessionRecord Tls(uint16_t version, uint16_t suite, const char* client = "10.0.0.1") {
  parser::SessionRecord r = Base(client);
  parser::ClientHelloInfo ch;
  ch.version = 0x0303;
  ch.supported_versions = {0x0304, 0x0303};
  r.client_hello = ch;
  r.client_hello_max_version = 0x0304;
  parser::ServerHelloInfo sh;
  sh.version = version;
  sh.cipher_suite = suite;
  r.server_hello = sh;
  r.tls = parser::NegotiatedTls{version, suite};
  r.outcome = Outcome::kTls;
  return r;
}

struct Sample {
  std::string type;
  double value;
};

// name{labels} -> sample, from a collection.
class Snapshot {
 public:
  explicit Snapshot(const std::vector<prometheus::MetricFamily>& families) {
    for (const auto& f : families) {
      names_.push_back(f.name);
      types_[f.name] = f.type;
      for (const auto& m : f.metric) {
        LabelMap labels;
        for (const auto& l : m.label) labels[l.name] = l.value;
        const double v = f.type == prometheus::MetricType::Gauge ? m.gauge.value : m.counter.value;
        values_[{f.name, labels}] = v;
        ++count_[f.name];
      }
    }
  }
  // -1 when absent.
  double Get(const std::string& name, const LabelMap& labels) const {
    auto it = values_.find({name, labels});
    return it == values_.end() ? -1 : it->second;
  }
  size_t Count(const std::string& name) const {
    auto it = count_.find(name);
    return it == count_.end() ? 0 : it->second;
  }
  bool Has(const std::string& name) const { return types_.count(name) != 0; }
  prometheus::MetricType Type(const std::string& name) const { return types_.at(name); }
  const std::vector<std::string>& names() const { return names_; }

 private:
  std::map<std::pair<std::string, LabelMap>, double> values_;
  std::map<std::string, size_t> count_;
  std::map<std::string, prometheus::MetricType> types_;
  std::vector<std::string> names_;
};

Snapshot Collect(const Metrics& m) { return Snapshot(m.collectable()->Collect()); }

parser::SessionRecord Everything() {
  parser::SessionRecord r = Tls(0x0301, 0x000a, "192.0.2.50");
  r.legacy = true;
  r.alerts = {{true, 2, 42}};
  r.outcome = Outcome::kTlsFailed;
  parser::WhatIfPrediction p;
  p.policy = "pci";
  p.outcome = Outcome::kTlsFailed;
  p.reason = "protocol_version";
  r.what_if = std::vector<parser::WhatIfPrediction>{p};
  for (unsigned i = 0; i < static_cast<unsigned>(Finding::kCount); ++i) {
    r.findings |= FindingBit(static_cast<Finding>(i));
  }
  parser::CertificateInfo c;
  c.subject = "CN=db\nnewline,O=\"Q\"";
  c.issuer = std::string("CN=bad\xff utf8");
  c.not_after = 1692662400;
  r.certificate = c;
  return r;
}

PipelineStats SomeStats() {
  PipelineStats p;
  CaptureSourceStats s;
  s.source = "ebpf:eth0";
  s.packets = 5;
  s.drops = {{"ringbuf_full", 1}};
  p.sources.push_back(s);
  p.evictions = {{"idle", 1}};
  return p;
}

TEST(Metrics, EveryFamilyOfTheInterfaceWithItsType) {
  Metrics m;
  // Before anything is counted, families without series are not exposed (prometheus-cpp).
  EXPECT_EQ(Collect(m).Count("pgtlsmon_sessions_total"), 0u);
  m.OnRecord(Everything());
  parser::SessionRecord plain = Base();
  plain.outcome = Outcome::kPlaintext;
  m.OnRecord(plain);
  m.SetStatsProvider(SomeStats);
  const Snapshot s = Collect(m);
  using prometheus::MetricType;
  const std::map<std::string, MetricType> want = {
      {"pgtlsmon_sessions_total", MetricType::Counter},
      {"pgtlsmon_legacy_sessions_total", MetricType::Counter},
      {"pgtlsmon_plaintext_sessions_total", MetricType::Counter},
      {"pgtlsmon_handshake_failures_total", MetricType::Counter},
      {"pgtlsmon_negotiated_ciphers_total", MetricType::Counter},
      {"pgtlsmon_client_hello_max_version_total", MetricType::Counter},
      {"pgtlsmon_findings_total", MetricType::Counter},
      {"pgtlsmon_server_certificate_not_after_seconds", MetricType::Gauge},
      {"pgtlsmon_packets_total", MetricType::Counter},
      {"pgtlsmon_bytes_total", MetricType::Counter},
      {"pgtlsmon_skipped_packets_total", MetricType::Counter},
      {"pgtlsmon_skipped_bytes_total", MetricType::Counter},
      {"pgtlsmon_capture_drops_total", MetricType::Counter},
      {"pgtlsmon_parse_errors_total", MetricType::Counter},
      {"pgtlsmon_tunnel_packets_total", MetricType::Counter},
      {"pgtlsmon_flows_active", MetricType::Gauge},
      {"pgtlsmon_flow_evictions_total", MetricType::Counter},
      {"pgtlsmon_build_info", MetricType::Gauge},
      {"pgtlsmon_label_overflow_total", MetricType::Counter},
      {"pgtlsmon_what_if_sessions_total", MetricType::Counter},
      {"pgtlsmon_what_if_failures_total", MetricType::Counter},
  };
  for (const auto& [name, type] : want) {
    ASSERT_TRUE(s.Has(name)) << name;
    EXPECT_EQ(s.Type(name), type) << name;
  }
  EXPECT_EQ(s.Get("pgtlsmon_build_info", {{"version", "0.1.0"}, {"capture", "none"}}), 1);
  EXPECT_EQ(s.Get("pgtlsmon_flows_active", {}), 0);
}

TEST(Metrics, TlsSessionCounts) {
  Metrics m;
  m.OnRecord(Tls(0x0304, 0x1301));
  m.OnRecord(Tls(0x0304, 0x1301, "10.0.0.9"));
  m.OnRecord(Tls(0x0303, 0xc030));
  const Snapshot s = Collect(m);
  const std::string server = "10.0.0.2:5432";
  EXPECT_EQ(s.Get("pgtlsmon_sessions_total",
                  {{"server", server}, {"outcome", "tls"}, {"version", "TLSv1.3"}}),
            2);
  EXPECT_EQ(s.Get("pgtlsmon_sessions_total",
                  {{"server", server}, {"outcome", "tls"}, {"version", "TLSv1.2"}}),
            1);
  EXPECT_EQ(
      s.Get("pgtlsmon_negotiated_ciphers_total",
            {{"server", server}, {"version", "TLSv1.3"}, {"cipher", "TLS_AES_128_GCM_SHA256"}}),
      2);
  EXPECT_EQ(s.Get("pgtlsmon_negotiated_ciphers_total",
                  {{"server", server},
                   {"version", "TLSv1.2"},
                   {"cipher", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"}}),
            1);
  EXPECT_EQ(s.Get("pgtlsmon_client_hello_max_version_total",
                  {{"server", server}, {"version", "TLSv1.3"}}),
            3);
  EXPECT_EQ(s.Count("pgtlsmon_legacy_sessions_total"), 0u);
  EXPECT_EQ(s.Count("pgtlsmon_plaintext_sessions_total"), 0u);
  EXPECT_EQ(s.Count("pgtlsmon_handshake_failures_total"), 0u);
}

TEST(Metrics, UnnamedCipherAndUnknownVersionUseHex) {
  Metrics m;
  m.OnRecord(Tls(0x7f1c, 0xabcd));
  const Snapshot s = Collect(m);
  EXPECT_EQ(s.Get("pgtlsmon_negotiated_ciphers_total",
                  {{"server", "10.0.0.2:5432"}, {"version", "0x7f1c"}, {"cipher", "0xabcd"}}),
            1);
}

TEST(Metrics, LegacyPlaintextFailuresAndFindings) {
  Metrics m;
  // Legacy negotiated TLSv1 with a weak cipher.
  parser::SessionRecord legacy = Tls(0x0301, 0x0005, "192.0.2.7");
  legacy.legacy = true;
  legacy.findings = FindingBit(Finding::kLegacyTlsNegotiated) | FindingBit(Finding::kWeakCipher);
  m.OnRecord(legacy);
  m.OnRecord(legacy);
  // Legacy offered only: the client offered TLSv1.1 at most, the server failed it.
  parser::SessionRecord offered = Base("192.0.2.8");
  parser::ClientHelloInfo ch;
  ch.version = 0x0302;
  offered.client_hello = ch;
  offered.client_hello_max_version = 0x0302;
  offered.alerts = {{false, 1, 0}, {false, 2, 70}, {false, 2, 40}};
  offered.outcome = Outcome::kTlsFailed;
  offered.legacy = true;
  offered.findings =
      FindingBit(Finding::kLegacyTlsOfferedOnly) | FindingBit(Finding::kHandshakeFailed);
  m.OnRecord(offered);
  // A failure without any alert: the peer just closed.
  parser::SessionRecord closed = Base();
  closed.client_hello = parser::ClientHelloInfo{};
  closed.client_hello->version = 0x0303;
  closed.outcome = Outcome::kTlsFailed;
  m.OnRecord(closed);
  // Plaintext.
  parser::SessionRecord plain = Base("192.0.2.9");
  plain.pg.startup = parser::StartupInfo{};
  plain.outcome = Outcome::kPlaintext;
  plain.findings = FindingBit(Finding::kPlaintextSession);
  m.OnRecord(plain);

  const Snapshot s = Collect(m);
  const std::string server = "10.0.0.2:5432";
  EXPECT_EQ(s.Get("pgtlsmon_legacy_sessions_total",
                  {{"server", server}, {"client", "192.0.2.7"}, {"version", "TLSv1"}}),
            2);
  EXPECT_EQ(s.Get("pgtlsmon_legacy_sessions_total",
                  {{"server", server}, {"client", "192.0.2.8"}, {"version", "TLSv1.1"}}),
            1);
  EXPECT_EQ(s.Get("pgtlsmon_sessions_total",
                  {{"server", server}, {"outcome", "tls_failed"}, {"version", "none"}}),
            2);
  EXPECT_EQ(s.Get("pgtlsmon_sessions_total",
                  {{"server", server}, {"outcome", "plaintext"}, {"version", "none"}}),
            1);
  EXPECT_EQ(s.Get("pgtlsmon_handshake_failures_total",
                  {{"server", server}, {"alert", "protocol_version"}}),
            1);
  EXPECT_EQ(s.Get("pgtlsmon_handshake_failures_total", {{"server", server}, {"alert", "none"}}), 1);
  EXPECT_EQ(s.Count("pgtlsmon_handshake_failures_total"), 2u);
  EXPECT_EQ(
      s.Get("pgtlsmon_plaintext_sessions_total", {{"server", server}, {"client", "192.0.2.9"}}), 1);
  EXPECT_EQ(
      s.Get("pgtlsmon_negotiated_ciphers_total",
            {{"server", server}, {"version", "TLSv1"}, {"cipher", "TLS_RSA_WITH_RC4_128_SHA"}}),
      2);
  EXPECT_EQ(s.Get("pgtlsmon_client_hello_max_version_total",
                  {{"server", server}, {"version", "TLSv1.1"}}),
            1);
  // Computed from the ClientHello when the parser left client_hello_max_version at 0.
  EXPECT_EQ(s.Get("pgtlsmon_client_hello_max_version_total",
                  {{"server", server}, {"version", "TLSv1.2"}}),
            1);
  EXPECT_EQ(
      s.Get("pgtlsmon_findings_total", {{"server", server}, {"finding", "legacy_tls_negotiated"}}),
      2);
  EXPECT_EQ(s.Get("pgtlsmon_findings_total", {{"server", server}, {"finding", "weak_cipher"}}), 2);
  EXPECT_EQ(s.Get("pgtlsmon_findings_total",
                  {{"server", server}, {"finding", "legacy_tls_offered_only"}}),
            1);
  EXPECT_EQ(s.Get("pgtlsmon_findings_total", {{"server", server}, {"finding", "handshake_failed"}}),
            1);
  EXPECT_EQ(
      s.Get("pgtlsmon_findings_total", {{"server", server}, {"finding", "plaintext_session"}}), 1);
  EXPECT_EQ(s.Count("pgtlsmon_findings_total"), 5u);
}

TEST(Metrics, Ipv6ServerLabel) {
  Metrics m;
  parser::SessionRecord r = Base();
  r.server = {V6("2001:db8::5"), 6432};
  r.client = {V6("2001:db8::7"), 50000};
  r.outcome = Outcome::kPlaintext;
  m.OnRecord(r);
  const Snapshot s = Collect(m);
  EXPECT_EQ(s.Get("pgtlsmon_plaintext_sessions_total",
                  {{"server", "[2001:db8::5]:6432"}, {"client", "2001:db8::7"}}),
            1);
}

TEST(Metrics, ClientCapFoldsIntoOther) {
  Metrics::Options o;
  o.max_clients = 3;
  Metrics m(o);
  for (int i = 1; i <= 5; ++i) {
    parser::SessionRecord r = Base(("192.0.2." + std::to_string(i)).c_str());
    r.outcome = Outcome::kPlaintext;
    m.OnRecord(r);
  }
  // A client seen before the cap keeps its own series.
  parser::SessionRecord again = Base("192.0.2.1");
  again.outcome = Outcome::kPlaintext;
  m.OnRecord(again);
  const Snapshot s = Collect(m);
  const std::string server = "10.0.0.2:5432";
  EXPECT_EQ(
      s.Get("pgtlsmon_plaintext_sessions_total", {{"server", server}, {"client", "192.0.2.1"}}), 2);
  EXPECT_EQ(
      s.Get("pgtlsmon_plaintext_sessions_total", {{"server", server}, {"client", "192.0.2.3"}}), 1);
  EXPECT_EQ(
      s.Get("pgtlsmon_plaintext_sessions_total", {{"server", server}, {"client", "192.0.2.4"}}),
      -1);
  EXPECT_EQ(s.Get("pgtlsmon_plaintext_sessions_total", {{"server", server}, {"client", "other"}}),
            2);
  EXPECT_EQ(s.Count("pgtlsmon_plaintext_sessions_total"), 4u);
  EXPECT_EQ(s.Get("pgtlsmon_label_overflow_total", {{"label", "client"}}), 2);
}

TEST(Metrics, ServerCapFoldsIntoOther) {
  Metrics::Options o;
  o.max_servers = 2;
  Metrics m(o);
  for (const char* server : {"10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.4"}) {
    m.OnRecord(Tls(0x0304, 0x1301));
    parser::SessionRecord r = Base("10.0.0.1", server);
    r.outcome = Outcome::kCancel;
    m.OnRecord(r);
  }
  const Snapshot s = Collect(m);
  EXPECT_EQ(s.Get("pgtlsmon_sessions_total",
                  {{"server", "10.0.0.2:5432"}, {"outcome", "tls"}, {"version", "TLSv1.3"}}),
            4);
  EXPECT_EQ(s.Get("pgtlsmon_sessions_total",
                  {{"server", "10.0.1.1:5432"}, {"outcome", "cancel"}, {"version", "none"}}),
            1);
  EXPECT_EQ(s.Get("pgtlsmon_sessions_total",
                  {{"server", "other"}, {"outcome", "cancel"}, {"version", "none"}}),
            3);
  EXPECT_EQ(s.Get("pgtlsmon_label_overflow_total", {{"label", "server"}}), 3);
}

TEST(Metrics, CertificateExpiryGaugeDistinctAndCapped) {
  Metrics::Options o;
  o.max_certificates = 2;
  Metrics m(o);
  auto with_cert = [](const std::string& subject, int64_t not_after) {
    parser::SessionRecord r = Tls(0x0303, 0xc030);
    parser::CertificateInfo c;
    c.subject = subject;
    c.issuer = "CN=Example CA,O=Example";
    c.not_after = not_after;
    r.certificate = c;
    return r;
  };
  m.OnRecord(with_cert("CN=a", 1000));
  m.OnRecord(with_cert("CN=a", 2000));  // renewed: the latest seen wins
  m.OnRecord(with_cert(R"(CN=b"quoted"\)", 3000));
  m.OnRecord(with_cert("CN=c", 5000));
  m.OnRecord(with_cert("CN=d", 4000));
  m.OnRecord(with_cert("CN=c", 6000));
  const Snapshot s = Collect(m);
  const std::string server = "10.0.0.2:5432";
  const std::string issuer = "CN=Example CA,O=Example";
  const std::string name = "pgtlsmon_server_certificate_not_after_seconds";
  EXPECT_EQ(s.Get(name, {{"server", server}, {"subject", "CN=a"}, {"issuer", issuer}}), 2000);
  EXPECT_EQ(s.Get(name, {{"server", server}, {"subject", "CN=b\"quoted\"\\"}, {"issuer", issuer}}),
            3000);
  // Past the cap: one series with the earliest expiry among the folded certificates.
  EXPECT_EQ(s.Get(name, {{"server", server}, {"subject", "other"}, {"issuer", "other"}}), 4000);
  EXPECT_EQ(s.Count(name), 3u);
  EXPECT_EQ(s.Get("pgtlsmon_label_overflow_total", {{"label", "certificate"}}), 3);
}

TEST(Metrics, ProviderMetricsReadAtCollect) {
  Metrics m;
  std::atomic<uint64_t> packets{10};
  int calls = 0;
  m.SetStatsProvider([&] {
    ++calls;
    PipelineStats p;
    CaptureSourceStats eth;
    eth.source = "eth0";
    eth.packets = packets.load();
    eth.bytes = 1500;
    eth.skipped_packets = 4;
    eth.skipped_bytes = 400;
    eth.drops = {{"kernel", 2}, {"ringbuf_full", 3}};
    eth.tunnel_packets = {{"vxlan", 9}, {"gre", 0}};  // decapsulated by the eBPF program
    p.sources.push_back(eth);
    CaptureSourceStats lo;
    lo.source = "lo";
    p.sources.push_back(lo);
    p.parse.Add(parser::Stage::kTls, parser::Reason::kBadRecord, 7);
    p.parse.Add(parser::Stage::kPostgres, parser::Reason::kUnexpectedSslReply);
    p.parse.tunnel_packets[static_cast<size_t>(parser::TunnelType::kVxlan)] = 8;
    p.flows_active = 12;
    p.evictions = {{"table_full", 5}, {"idle", 6}};
    return p;
  });
  EXPECT_EQ(calls, 0);
  Snapshot s = Collect(m);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(s.Get("pgtlsmon_packets_total", {{"source", "eth0"}}), 10);
  EXPECT_EQ(s.Get("pgtlsmon_packets_total", {{"source", "lo"}}), 0);
  EXPECT_EQ(s.Get("pgtlsmon_bytes_total", {{"source", "eth0"}}), 1500);
  EXPECT_EQ(s.Get("pgtlsmon_skipped_packets_total", {{"source", "eth0"}}), 4);
  EXPECT_EQ(s.Get("pgtlsmon_skipped_bytes_total", {{"source", "eth0"}}), 400);
  EXPECT_EQ(s.Get("pgtlsmon_capture_drops_total", {{"source", "eth0"}, {"reason", "kernel"}}), 2);
  EXPECT_EQ(s.Get("pgtlsmon_capture_drops_total", {{"source", "eth0"}, {"reason", "ringbuf_full"}}),
            3);
  EXPECT_EQ(s.Get("pgtlsmon_parse_errors_total", {{"stage", "tls"}, {"reason", "bad_record"}}), 7);
  EXPECT_EQ(s.Get("pgtlsmon_parse_errors_total",
                  {{"stage", "postgres"}, {"reason", "unexpected_ssl_reply"}}),
            1);
  EXPECT_EQ(s.Get("pgtlsmon_parse_errors_total", {{"stage", "link"}, {"reason", "truncated"}}), 0);
  EXPECT_EQ(
      s.Count("pgtlsmon_parse_errors_total"),
      static_cast<size_t>(parser::Stage::kCount) * static_cast<size_t>(parser::Reason::kCount));
  EXPECT_EQ(s.Get("pgtlsmon_tunnel_packets_total", {{"type", "vxlan"}}), 8);
  EXPECT_EQ(s.Get("pgtlsmon_tunnel_packets_total", {{"type", "erspan"}}), 0);
  EXPECT_EQ(s.Count("pgtlsmon_tunnel_packets_total"), 5u);  // every type, none for "none"
  EXPECT_EQ(s.Get("pgtlsmon_capture_tunnel_packets_total", {{"source", "eth0"}, {"type", "vxlan"}}),
            9);
  EXPECT_EQ(s.Get("pgtlsmon_capture_tunnel_packets_total", {{"source", "eth0"}, {"type", "gre"}}),
            0);
  EXPECT_EQ(s.Count("pgtlsmon_capture_tunnel_packets_total"), 2u);  // none for "lo"
  EXPECT_EQ(s.Get("pgtlsmon_flows_active", {}), 12);
  EXPECT_EQ(s.Get("pgtlsmon_flow_evictions_total", {{"reason", "table_full"}}), 5);
  EXPECT_EQ(s.Get("pgtlsmon_flow_evictions_total", {{"reason", "idle"}}), 6);

  packets = 99;  // values are read at each scrape, not copied at registration
  s = Collect(m);
  EXPECT_EQ(s.Get("pgtlsmon_packets_total", {{"source", "eth0"}}), 99);

  m.SetStatsProvider(nullptr);
  s = Collect(m);
  EXPECT_FALSE(s.Has("pgtlsmon_packets_total"));
  EXPECT_TRUE(s.Has("pgtlsmon_build_info"));
}

TEST(Metrics, BuildInfoFollowsTheCaptureBackend) {
  Metrics::Options o;
  o.version = "1.2.3";
  o.capture = "pcap";
  Metrics m(o);
  m.SetCaptureBackend("ebpf");
  const Snapshot s = Collect(m);
  EXPECT_EQ(s.Get("pgtlsmon_build_info", {{"version", "1.2.3"}, {"capture", "ebpf"}}), 1);
  EXPECT_EQ(s.Count("pgtlsmon_build_info"), 1u);
}

TEST(Metrics, RegistryHoldsTheCountedFamiliesOnly) {
  Metrics m;
  m.OnRecord(Tls(0x0304, 0x1301));
  m.SetStatsProvider([] { return PipelineStats(); });
  const Snapshot s(m.registry()->Collect());
  EXPECT_TRUE(s.Has("pgtlsmon_sessions_total"));
  EXPECT_FALSE(s.Has("pgtlsmon_packets_total"));
}

TEST(Metrics, SerializedTextPassesPromtool) {
  Metrics m;
  m.OnRecord(Everything());
  parser::SessionRecord plain = Base();
  plain.outcome = Outcome::kPlaintext;
  m.OnRecord(plain);
  m.SetStatsProvider(SomeStats);
  const std::string text = m.SerializeText();
  EXPECT_NE(text.find("# TYPE pgtlsmon_sessions_total counter"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE pgtlsmon_flows_active gauge"), std::string::npos);
  EXPECT_NE(text.find("subject=\"CN=db\\nnewline,O=\\\"Q\\\"\""), std::string::npos) << text;

  if (RunShell("command -v promtool").status != 0) GTEST_SKIP() << "no promtool";
  const std::string path = ::testing::TempDir() + "/pgtls_metrics_" + std::to_string(getpid());
  {
    std::ofstream f(path);
    f << text;
  }
  const ShellResult check = RunShell("promtool check metrics < " + path);
  EXPECT_EQ(check.status, 0) << check.output << "\n" << text;
  std::remove(path.c_str());
}

TEST(Metrics, WriteTextFileIsAtomicAndComplete) {
  Metrics m;
  m.OnRecord(Tls(0x0304, 0x1302));
  const std::string dir = ::testing::TempDir();
  const std::string path = dir + "/pgtlsmon_test_" + std::to_string(getpid()) + ".prom";
  ASSERT_TRUE(m.WriteTextFile(path).ok());
  std::ifstream f(path);
  std::stringstream content;
  content << f.rdbuf();
  EXPECT_EQ(content.str(), m.SerializeText());
  EXPECT_NE(content.str().find("pgtlsmon_sessions_total{"), std::string::npos);
  // No temporary file left behind.
  EXPECT_NE(access((path + ".tmp." + std::to_string(getpid())).c_str(), F_OK), 0);
  std::remove(path.c_str());

  const absl::Status bad = m.WriteTextFile("/nonexistent-dir/x.prom");
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("/nonexistent-dir/x.prom"), std::string::npos) << bad.message();
}

TEST(Metrics, ConcurrentRecordsAndScrapes) {
  Metrics::Options o;
  o.max_clients = 50;
  Metrics m(o);
  m.SetStatsProvider(SomeStats);
  std::atomic<bool> stop{false};
  std::thread scraper([&] {
    while (!stop.load()) (void)m.SerializeText();
  });
  std::vector<std::thread> writers;
  writers.reserve(2);
  for (int t = 0; t < 2; ++t) {
    writers.emplace_back([&m, t] {
      for (int i = 0; i < 2000; ++i) {
        parser::SessionRecord r =
            Base(("10." + std::to_string(t) + "." + std::to_string(i % 100) + ".1").c_str());
        r.outcome = Outcome::kPlaintext;
        r.legacy = (i % 3) == 0;
        m.OnRecord(r);
      }
    });
  }
  for (auto& w : writers) w.join();
  stop = true;
  scraper.join();
  const Snapshot s = Collect(m);
  EXPECT_EQ(s.Get("pgtlsmon_sessions_total",
                  {{"server", "10.0.0.2:5432"}, {"outcome", "plaintext"}, {"version", "none"}}),
            4000);
  double plaintext = 0;
  for (const auto& f : m.collectable()->Collect()) {
    if (f.name != "pgtlsmon_plaintext_sessions_total") continue;
    for (const auto& metric : f.metric) plaintext += metric.counter.value;
  }
  EXPECT_EQ(plaintext, 4000);
  EXPECT_EQ(s.Count("pgtlsmon_plaintext_sessions_total"), 51u);  // 50 clients + other
}

TEST(Metrics, WhatIfPerPolicy) {
  Metrics m;
  parser::SessionRecord r = Tls(0x0301, 0xc014, "10.0.0.7");
  parser::WhatIfPrediction fail;
  fail.policy = "pci";
  fail.outcome = Outcome::kTlsFailed;
  fail.reason = "protocol_version";
  parser::WhatIfPrediction ok;
  ok.policy = "max12";
  ok.outcome = Outcome::kTls;
  ok.version = 0x0303;
  ok.cipher_suite = 0xc030;
  parser::WhatIfPrediction odd = fail;
  odd.policy = "odd";
  odd.reason = {};  // a failure OpenSSL gives no mapped reason for
  r.what_if = std::vector<parser::WhatIfPrediction>{fail, ok, odd};
  m.OnRecord(r);
  m.OnRecord(r);
  parser::SessionRecord none = Base();
  none.what_if.emplace();  // no ClientHello: nothing to predict
  m.OnRecord(none);
  const Snapshot s = Collect(m);
  EXPECT_EQ(s.Get("pgtlsmon_what_if_sessions_total", {{"server", "10.0.0.2:5432"},
                                                      {"policy", "pci"},
                                                      {"outcome", "tls_failed"},
                                                      {"version", "none"}}),
            2);
  EXPECT_EQ(s.Get("pgtlsmon_what_if_sessions_total", {{"server", "10.0.0.2:5432"},
                                                      {"policy", "max12"},
                                                      {"outcome", "tls"},
                                                      {"version", "TLSv1.2"}}),
            2);
  EXPECT_EQ(s.Get("pgtlsmon_what_if_failures_total", {{"server", "10.0.0.2:5432"},
                                                      {"policy", "pci"},
                                                      {"client", "10.0.0.7"},
                                                      {"reason", "protocol_version"}}),
            2);
  EXPECT_EQ(s.Get("pgtlsmon_what_if_failures_total", {{"server", "10.0.0.2:5432"},
                                                      {"policy", "odd"},
                                                      {"client", "10.0.0.7"},
                                                      {"reason", "other"}}),
            2);
  EXPECT_EQ(s.Count("pgtlsmon_what_if_failures_total"), 2u);
}

}  // namespace
}  // namespace pgtlsmon::exporter
