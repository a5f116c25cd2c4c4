#include "exporter/metrics.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <exception>
#include <mutex>
#include <sstream>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "exporter/text_util.h"
#include "parser/tls_names.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

#ifndef PGTLS_VERSION
#define PGTLS_VERSION "unknown"
#endif

namespace pgtlsmon::exporter {
namespace {

constexpr std::string_view kOther = "other";
constexpr std::string_view kNone = "none";
constexpr size_t kMaxCertLabelBytes = 256;  // subject/issuer label values are cut here

// Which cached series a key belongs to (first element of SeriesKey).
enum SeriesKind : uint32_t {
  kSessions,
  kLegacy,
  kPlaintext,
  kFailures,
  kCiphers,
  kMaxVersion,
  kFindings,
  kWhatIfSessions,
  kWhatIfFailures,
};
using SeriesKey = std::array<uint32_t, 4>;

constexpr uint32_t kNoVersion = 0x10000;  // version "none"
constexpr uint32_t kNoAlert = 0x100;      // alert "none"
constexpr uint32_t kNoClient = 0xffffffff;
constexpr std::string_view kWhatIfReasons[] = {
    "protocol_version", "no_shared_cipher", "no_shared_group", "no_signature_algorithm", "other"};

using IpKey = std::pair<std::array<uint8_t, 16>, bool>;
using EndpointKey = std::pair<IpKey, uint16_t>;

IpKey KeyOf(const parser::IpAddress& ip) { return {ip.bytes, ip.is_v6}; }

std::string VersionLabel(uint32_t v) {
  return v == kNoVersion ? std::string(kNone) : parser::VersionName(static_cast<uint16_t>(v));
}

std::string CipherLabel(uint16_t suite) {
  const std::string_view name = parser::CipherName(suite);
  return name.empty() ? parser::HexCode(suite) : std::string(name);
}

// Newest known version a ClientHello offered (supported_versions, else its version), or 0.
uint16_t MaxOfferedVersion(const parser::SessionRecord& r) {
  if (r.client_hello_max_version != 0) return r.client_hello_max_version;
  if (!r.client_hello) return 0;
  uint16_t best = 0;
  int best_rank = -1;
  auto consider = [&](uint16_t v) {
    const int rank = parser::VersionRank(v);
    if (rank > best_rank) {
      best_rank = rank;
      best = v;
    }
  };
  for (uint16_t v : r.client_hello->supported_versions) consider(v);
  if (r.client_hello->supported_versions.empty()) consider(r.client_hello->version);
  return best;
}

void AddSample(prometheus::MetricFamily* f, std::vector<prometheus::ClientMetric::Label> labels,
               double value) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  if (f->type == prometheus::MetricType::Gauge) {
    m.gauge.value = value;
  } else {
    m.counter.value = value;
  }
  f->metric.push_back(std::move(m));
}

// A family of the registry (every metric of pgtlsmon is defined in this file).
prometheus::Family<prometheus::Counter>& CounterFamily(prometheus::Registry& registry,
                                                       const std::string& name,
                                                       const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
}
prometheus::Family<prometheus::Gauge>& GaugeFamily(prometheus::Registry& registry,
                                                   const std::string& name,
                                                   const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry);
}

prometheus::MetricFamily NewFamily(std::string name, std::string help,
                                   prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

}  // namespace

// Shared with the collectable handed to the HTTP server, so a scrape stays safe even if the
// Metrics object goes away first.
struct Metrics::State : public prometheus::Collectable {
  explicit State(Options o)
      : options(std::move(o)),
        registry(std::make_shared<prometheus::Registry>()),
        sessions(CounterFamily(*registry, "pgtlsmon_sessions_total",
                               "Connections by outcome and negotiated TLS version, counted when "
                               "their record is final.")),
        legacy(CounterFamily(*registry, "pgtlsmon_legacy_sessions_total",
                             "Connections that negotiated, or only offered, a TLS version older "
                             "than TLSv1.2 (client capped).")),
        plaintext(CounterFamily(*registry, "pgtlsmon_plaintext_sessions_total",
                                "Connections whose StartupMessage travelled in clear (client "
                                "capped).")),
        failures(CounterFamily(*registry, "pgtlsmon_handshake_failures_total",
                               "Failed TLS handshakes by the first fatal alert in clear (none when "
                               "the peer just closed).")),
        ciphers(CounterFamily(*registry, "pgtlsmon_negotiated_ciphers_total",
                              "Negotiated cipher suites by IANA name.")),
        max_version(
            CounterFamily(*registry, "pgtlsmon_client_hello_max_version_total",
                          "The newest version each connection's first ClientHello offered.")),
        findings(CounterFamily(*registry, "pgtlsmon_findings_total",
                               "Session records carrying each finding.")),
        cert_not_after(GaugeFamily(*registry, "pgtlsmon_server_certificate_not_after_seconds",
                                   "Expiry (Unix time) of each distinct server certificate seen "
                                   "in clear (capped).")),
        what_if_sessions(CounterFamily(*registry, "pgtlsmon_what_if_sessions_total",
                                       "With --what-if: connections with a ClientHello by the "
                                       "outcome and version predicted under each planned policy.")),
        what_if_failures(CounterFamily(*registry, "pgtlsmon_what_if_failures_total",
                                       "With --what-if: connections that would fail under each "
                                       "planned policy, by reason (client capped).")),
        build_info(GaugeFamily(*registry, "pgtlsmon_build_info",
                               "Always 1; labels give the version and the capture backend.")),
        overflow(CounterFamily(*registry, "pgtlsmon_label_overflow_total",
                               "Label values counted as \"other\" because the label's cap of "
                               "distinct values was reached.")),
        overflow_client(overflow.Add({{"label", "client"}})),
        overflow_server(overflow.Add({{"label", "server"}})),
        overflow_certificate(overflow.Add({{"label", "certificate"}})) {
    if (options.version.empty()) options.version = PGTLS_VERSION;
    build_info_child =
        &build_info.Add({{"version", options.version}, {"capture", options.capture}});
    build_info_child->Set(1);
    server_labels.emplace_back(kOther);  // id 0
    client_labels.emplace_back(kOther);  // id 0
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> out = registry->Collect();
    std::function<PipelineStats()> p;
    {
      std::lock_guard<std::mutex> lock(provider_mu);
      p = provider;
    }
    if (p) AppendPipeline(p(), &out);
    return out;
  }

  static void AppendPipeline(const PipelineStats& s, std::vector<prometheus::MetricFamily>* out) {
    using prometheus::MetricType;
    auto packets =
        NewFamily("pgtlsmon_packets_total", "Packets the capture layer handed to the parser.",
                  MetricType::Counter);
    auto bytes = NewFamily("pgtlsmon_bytes_total", "Bytes the capture layer handed to the parser.",
                           MetricType::Counter);
    auto skipped_packets =
        NewFamily("pgtlsmon_skipped_packets_total",
                  "Packets of connections whose record was final, counted but not parsed.",
                  MetricType::Counter);
    auto skipped_bytes =
        NewFamily("pgtlsmon_skipped_bytes_total",
                  "Bytes of connections whose record was final, counted but not parsed.",
                  MetricType::Counter);
    auto drops = NewFamily("pgtlsmon_capture_drops_total",
                           "Packets lost before parsing (kernel, ring buffer, libpcap).",
                           MetricType::Counter);
    auto read_errors = NewFamily("pgtlsmon_stats_read_errors_total",
                                 "Failed reads of a capture source's own counters (eBPF maps, "
                                 "pcap_stats); its counters then hold the last values read.",
                                 MetricType::Counter);
    auto capture_tunnels =
        NewFamily("pgtlsmon_capture_tunnel_packets_total",
                  "Packets the capture back end decapsulated in the kernel (eBPF), by tunnel type "
                  "(each layer stripped counts).",
                  MetricType::Counter);
    for (const CaptureSourceStats& src : s.sources) {
      const std::string source = ValidUtf8(src.source, kMaxCertLabelBytes);
      AddSample(&packets, {{"source", source}}, static_cast<double>(src.packets));
      AddSample(&bytes, {{"source", source}}, static_cast<double>(src.bytes));
      AddSample(&skipped_packets, {{"source", source}}, static_cast<double>(src.skipped_packets));
      AddSample(&skipped_bytes, {{"source", source}}, static_cast<double>(src.skipped_bytes));
      AddSample(&read_errors, {{"source", source}}, static_cast<double>(src.read_errors));
      for (const auto& [reason, n] : src.drops) {
        AddSample(&drops, {{"source", source}, {"reason", ValidUtf8(reason, kMaxCertLabelBytes)}},
                  static_cast<double>(n));
      }
      for (const auto& [type, n] : src.tunnel_packets) {
        AddSample(&capture_tunnels,
                  {{"source", source}, {"type", ValidUtf8(type, kMaxCertLabelBytes)}},
                  static_cast<double>(n));
      }
    }
    auto parse = NewFamily("pgtlsmon_parse_errors_total",
                           "Malformed or unparseable input, by parser stage and reason.",
                           MetricType::Counter);
    // Closed sets: every combination is exported, so rate() works from the first error on.
    for (size_t st = 0; st < static_cast<size_t>(parser::Stage::kCount); ++st) {
      for (size_t re = 0; re < static_cast<size_t>(parser::Reason::kCount); ++re) {
        const auto stage = static_cast<parser::Stage>(st);
        const auto reason = static_cast<parser::Reason>(re);
        AddSample(&parse,
                  {{"reason", std::string(parser::ReasonName(reason))},
                   {"stage", std::string(parser::StageName(stage))}},
                  static_cast<double>(s.parse.Get(stage, reason)));
      }
    }
    auto tunnels = NewFamily("pgtlsmon_tunnel_packets_total",
                             "Packets decapsulated, by tunnel type (each layer stripped counts).",
                             MetricType::Counter);
    for (size_t t = 1; t < static_cast<size_t>(parser::TunnelType::kCount); ++t) {
      AddSample(&tunnels,
                {{"type", std::string(parser::TunnelTypeName(static_cast<parser::TunnelType>(t)))}},
                static_cast<double>(s.parse.tunnel_packets[t]));
    }
    auto active =
        NewFamily("pgtlsmon_flows_active", "Connections being tracked.", MetricType::Gauge);
    AddSample(&active, {}, static_cast<double>(s.flows_active));
    auto evictions =
        NewFamily("pgtlsmon_flow_evictions_total",
                  "Tracked connections dropped (table full, idle timeout).", MetricType::Counter);
    for (const auto& [reason, n] : s.evictions) {
      AddSample(&evictions, {{"reason", ValidUtf8(reason, kMaxCertLabelBytes)}},
                static_cast<double>(n));
    }
    for (auto* f : {&packets, &bytes, &skipped_packets, &skipped_bytes, &drops, &read_errors,
                    &parse, &tunnels, &active, &evictions}) {
      out->push_back(std::move(*f));
    }
    if (!capture_tunnels.metric.empty()) out->push_back(std::move(capture_tunnels));
    if (s.session_log_errors) {
      auto log_errors = NewFamily("pgtlsmon_session_log_errors_total",
                                  "Session records or flushes that failed to reach the session "
                                  "log (disk full, I/O error).",
                                  MetricType::Counter);
      AddSample(&log_errors, {}, static_cast<double>(*s.session_log_errors));
      out->push_back(std::move(log_errors));
    }
    if (s.stale_scrapes) {
      auto stale = NewFamily("pgtlsmon_stats_stale_scrapes_total",
                             "Scrapes answered with an older snapshot of the pipeline counters "
                             "because the capture thread did not answer within 1 s.",
                             MetricType::Counter);
      AddSample(&stale, {}, static_cast<double>(*s.stale_scrapes));
      out->push_back(std::move(stale));
    }
  }

  // --- label ids (called with mu held) ---

  uint32_t ServerId(const parser::Endpoint& e) {
    const EndpointKey key{KeyOf(e.ip), e.port};
    if (auto it = server_ids.find(key); it != server_ids.end()) return it->second;
    if (server_ids.size() >= options.max_servers) {
      overflow_server.Increment();
      return 0;
    }
    const auto id = static_cast<uint32_t>(server_labels.size());
    server_labels.push_back(FormatEndpoint(e));
    server_ids.emplace(key, id);
    return id;
  }

  uint32_t ClientId(const parser::IpAddress& ip) {
    const IpKey key = KeyOf(ip);
    if (auto it = client_ids.find(key); it != client_ids.end()) return it->second;
    if (client_ids.size() >= options.max_clients) {
      overflow_client.Increment();
      return 0;
    }
    const auto id = static_cast<uint32_t>(client_labels.size());
    client_labels.push_back(parser::FormatIp(ip));
    client_ids.emplace(key, id);
    return id;
  }

  // The cached child for `key`; `make` builds its label set the first time.
  template <typename MakeLabels>
  prometheus::Counter& Series(prometheus::Family<prometheus::Counter>& family, const SeriesKey& key,
                              MakeLabels make) {
    auto it = series.find(key);
    if (it == series.end()) it = series.emplace(key, &family.Add(make())).first;
    return *it->second;
  }

  void Count(const parser::SessionRecord& r) {
    const uint32_t server = ServerId(r.server);
    const std::string& server_label = server_labels[server];

    const uint32_t version = r.tls ? r.tls->version : kNoVersion;
    const auto outcome = static_cast<uint32_t>(r.outcome);
    Series(sessions, {kSessions, server, outcome, version}, [&] {
      return prometheus::Labels{{"server", server_label},
                                {"outcome", std::string(parser::OutcomeName(r.outcome))},
                                {"version", VersionLabel(version)}};
    }).Increment();

    const uint16_t offered = MaxOfferedVersion(r);
    uint32_t client = 0;
    const bool need_client = r.legacy || r.outcome == parser::Outcome::kPlaintext;
    if (need_client) client = ClientId(r.client.ip);

    if (r.legacy) {
      // The negotiated version, else (legacy_tls_offered_only) the newest one offered.
      const uint32_t v = r.tls ? r.tls->version : (offered != 0 ? offered : kNoVersion);
      Series(legacy, {kLegacy, server, client, v}, [&] {
        return prometheus::Labels{{"server", server_label},
                                  {"client", client_labels[client]},
                                  {"version", VersionLabel(v)}};
      }).Increment();
    }
    if (r.outcome == parser::Outcome::kPlaintext) {
      Series(plaintext, {kPlaintext, server, client, 0}, [&] {
        return prometheus::Labels{{"server", server_label}, {"client", client_labels[client]}};
      }).Increment();
    }
    if (r.outcome == parser::Outcome::kTlsFailed) {
      uint32_t alert = kNoAlert;
      for (const parser::AlertInfo& a : r.alerts) {
        if (a.level == 2) {
          alert = a.description;
          break;
        }
      }
      Series(failures, {kFailures, server, alert, 0}, [&] {
        return prometheus::Labels{
            {"server", server_label},
            {"alert", alert == kNoAlert ? std::string(kNone)
                                        : parser::AlertName(static_cast<uint8_t>(alert))}};
      }).Increment();
    }
    if (r.tls) {
      const uint16_t v = r.tls->version;
      const uint16_t suite = r.tls->cipher_suite;
      Series(ciphers, {kCiphers, server, v, suite}, [&] {
        return prometheus::Labels{{"server", server_label},
                                  {"version", parser::VersionName(v)},
                                  {"cipher", CipherLabel(suite)}};
      }).Increment();
    }
    if (r.client_hello) {
      const uint32_t v = offered != 0 ? offered : kNoVersion;
      Series(max_version, {kMaxVersion, server, v, 0}, [&] {
        return prometheus::Labels{{"server", server_label}, {"version", VersionLabel(v)}};
      }).Increment();
    }
    for (unsigned i = 0; i < static_cast<unsigned>(parser::Finding::kCount); ++i) {
      const auto f = static_cast<parser::Finding>(i);
      if (!r.has_finding(f)) continue;
      Series(findings, {kFindings, server, i, 0}, [&] {
        return prometheus::Labels{{"server", server_label},
                                  {"finding", std::string(parser::FindingName(f))}};
      }).Increment();
    }
    if (r.certificate) CountCertificate(server, *r.certificate);
    if (r.what_if) CountWhatIf(r, server);
  }

  // pgtlsmon_what_if_*: one series set per policy (label `policy`), predictions OpenSSL could
  // not make count under outcome "unknown".
  void CountWhatIf(const parser::SessionRecord& r, uint32_t server) {
    const std::string& server_label = server_labels[server];
    uint32_t client = kNoClient;
    for (size_t i = 0; i < r.what_if->size(); ++i) {
      const parser::WhatIfPrediction& p = (*r.what_if)[i];
      const uint32_t version = p.version != 0 ? p.version : kNoVersion;
      const auto pol = static_cast<uint32_t>(i << 8);
      Series(what_if_sessions,
             {kWhatIfSessions, server, pol | static_cast<uint32_t>(p.outcome), version},
             [&] {
               return prometheus::Labels{{"server", server_label},
                                         {"policy", std::string(p.policy)},
                                         {"outcome", std::string(parser::OutcomeName(p.outcome))},
                                         {"version", VersionLabel(version)}};
             })
          .Increment();
      if (p.outcome != parser::Outcome::kTlsFailed) continue;
      if (client == kNoClient) client = ClientId(r.client.ip);
      const std::string_view reason = p.reason.empty() ? kWhatIfReasons[4] : p.reason;
      uint32_t reason_id = 0;  // a closed set (session-record.md), "other" last
      while (reason_id + 1 < std::size(kWhatIfReasons) && kWhatIfReasons[reason_id] != reason) {
        ++reason_id;
      }
      Series(what_if_failures, {kWhatIfFailures, server, client, pol | reason_id}, [&] {
        return prometheus::Labels{{"server", server_label},
                                  {"policy", std::string(p.policy)},
                                  {"client", client_labels[client]},
                                  {"reason", std::string(reason)}};
      }).Increment();
    }
  }

  void CountCertificate(uint32_t server, const parser::CertificateInfo& c) {
    const auto not_after = static_cast<double>(c.not_after);
    auto key = std::make_tuple(server, c.subject, c.issuer);
    if (auto it = certs.find(key); it != certs.end()) {
      it->second->Set(not_after);  // the most recently seen certificate under these names
      return;
    }
    if (certs.size() < options.max_certificates) {
      prometheus::Gauge& g =
          cert_not_after.Add({{"server", server_labels[server]},
                              {"subject", ValidUtf8(c.subject, kMaxCertLabelBytes)},
                              {"issuer", ValidUtf8(c.issuer, kMaxCertLabelBytes)}});
      g.Set(not_after);
      certs.emplace(std::move(key), &g);
      return;
    }
    // Past the cap: one series per server holds the earliest expiry among the folded ones, so
    // an expiry alert still fires.
    overflow_certificate.Increment();
    auto it = cert_other.find(server);
    if (it == cert_other.end()) {
      prometheus::Gauge& g = cert_not_after.Add({{"server", server_labels[server]},
                                                 {"subject", std::string(kOther)},
                                                 {"issuer", std::string(kOther)}});
      g.Set(not_after);
      cert_other.emplace(server, &g);
    } else if (not_after < it->second->Value()) {
      it->second->Set(not_after);
    }
  }

  Options options;
  std::shared_ptr<prometheus::Registry> registry;
  prometheus::Family<prometheus::Counter>& sessions;
  prometheus::Family<prometheus::Counter>& legacy;
  prometheus::Family<prometheus::Counter>& plaintext;
  prometheus::Family<prometheus::Counter>& failures;
  prometheus::Family<prometheus::Counter>& ciphers;
  prometheus::Family<prometheus::Counter>& max_version;
  prometheus::Family<prometheus::Counter>& findings;
  prometheus::Family<prometheus::Gauge>& cert_not_after;
  prometheus::Family<prometheus::Counter>& what_if_sessions;
  prometheus::Family<prometheus::Counter>& what_if_failures;
  prometheus::Family<prometheus::Gauge>& build_info;
  prometheus::Family<prometheus::Counter>& overflow;
  prometheus::Counter& overflow_client;
  prometheus::Counter& overflow_server;
  prometheus::Counter& overflow_certificate;

  // Guarded by mu: the label caches, touched by OnRecord and SetCaptureBackend only.
  std::mutex mu;
  prometheus::Gauge* build_info_child = nullptr;
  absl::flat_hash_map<EndpointKey, uint32_t> server_ids;
  std::vector<std::string> server_labels;
  absl::flat_hash_map<IpKey, uint32_t> client_ids;
  std::vector<std::string> client_labels;
  absl::flat_hash_map<SeriesKey, prometheus::Counter*> series;
  absl::flat_hash_map<std::tuple<uint32_t, std::string, std::string>, prometheus::Gauge*> certs;
  absl::flat_hash_map<uint32_t, prometheus::Gauge*> cert_other;

  mutable std::mutex provider_mu;
  std::function<PipelineStats()> provider;  // guarded by provider_mu
};

Metrics::Metrics() : Metrics(Options()) {}

Metrics::Metrics(Options options) : state_(std::make_shared<State>(std::move(options))) {}

Metrics::~Metrics() = default;

void Metrics::OnRecord(const parser::SessionRecord& r) {
  std::lock_guard<std::mutex> lock(state_->mu);
  try {
    state_->Count(r);
  } catch (const std::exception&) {
    // Only allocation failure can get here (label names are constants); losing one count is
    // better than taking the capture thread down.
  }
}

void Metrics::SetStatsProvider(std::function<PipelineStats()> provider) {
  std::lock_guard<std::mutex> lock(state_->provider_mu);
  state_->provider = std::move(provider);
}

void Metrics::SetCaptureBackend(std::string_view capture) {
  std::lock_guard<std::mutex> lock(state_->mu);
  try {
    if (state_->build_info_child != nullptr) state_->build_info.Remove(state_->build_info_child);
    state_->options.capture = std::string(capture);
    state_->build_info_child = &state_->build_info.Add(
        {{"version", state_->options.version}, {"capture", state_->options.capture}});
    state_->build_info_child->Set(1);
  } catch (const std::exception&) {
    state_->build_info_child = nullptr;
  }
}

std::shared_ptr<prometheus::Collectable> Metrics::collectable() const { return state_; }

std::shared_ptr<prometheus::Registry> Metrics::registry() const { return state_->registry; }

std::string Metrics::SerializeText() const {
  try {
    return prometheus::TextSerializer().Serialize(state_->Collect());
  } catch (const std::exception&) {
    return {};
  }
}

namespace {

// write() until all of `text` is out; the error names `name`.
absl::Status WriteAll(int fd, const std::string& text, const std::string& name) {
  std::string_view rest = text;
  while (!rest.empty()) {
    const ssize_t n = write(fd, rest.data(), rest.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, absl::StrCat("writing ", name));
    }
    rest.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Metrics::WriteTextFile(const std::string& path) const {
  std::string text;
  try {
    text = prometheus::TextSerializer().Serialize(state_->Collect());
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("serializing metrics: ", e.what()));
  }
  // A device or a pipe (/dev/stdout, a FIFO) is written in place: renaming a file over it
  // would replace the device node (as root) instead of writing to it.
  if (struct stat st{}; stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("opening ", path));
    absl::Status st_write = WriteAll(fd, text, path);
    if (close(fd) != 0 && st_write.ok())
      st_write = absl::ErrnoToStatus(errno, absl::StrCat("writing ", path));
    return st_write;
  }
  // The temporary file sits next to the target so that rename() is atomic; node_exporter skips
  // files not ending in .prom, so a leftover never gets read.
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("creating ", tmp));
  if (absl::Status st = WriteAll(fd, text, tmp); !st.ok()) {
    close(fd);
    unlink(tmp.c_str());
    return st;
  }
  const int sync_err = fsync(fd) != 0 ? errno : 0;
  const int close_err = close(fd) != 0 ? errno : 0;
  if (sync_err != 0 || close_err != 0) {
    const int err = sync_err != 0 ? sync_err : close_err;
    unlink(tmp.c_str());
    return absl::ErrnoToStatus(err, absl::StrCat("writing ", tmp));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    return absl::ErrnoToStatus(err, absl::StrCat("renaming ", tmp, " to ", path));
  }
  return absl::OkStatus();
}

}  // namespace pgtlsmon::exporter
