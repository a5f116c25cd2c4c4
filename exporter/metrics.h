// exporter/metrics.h: every metric of ../shared/spec/interface.md, in one prometheus::Registry.
//
// Two kinds of values:
//  - counted here, from final session records: Metrics::OnRecord();
//  - owned elsewhere (capture counters, parse errors, flow table): read at scrape or serialize
//    time from a PipelineStats provider, so nothing is copied on the packet path.
//
// Thread-safety contract
//  - OnRecord() may be called from any thread, also while a scrape runs. It takes one internal
//    mutex (uncontended in practice: one caller, once per connection, not per packet) to look up
//    the cached label children, then only increments/sets prometheus-cpp's atomic values.
//    Creating a new label child also takes that family's own lock, which a scrape holds briefly.
//  - Scrapes (Collect(), SerializeText(), WriteTextFile(), the HTTP server) never take the
//    OnRecord mutex; they call the stats provider on the scraping thread. The provider must
//    therefore be thread-safe (e.g. read atomics, or copy under its own lock) and quick.
//  - SetStatsProvider()/SetCaptureBackend() may be called at any time from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "parser/events.h"
#include "parser/parse_stats.h"

namespace prometheus {
class Collectable;
class Registry;
}  // namespace prometheus

namespace pgtlsmon::exporter {

// Counters one capture source (an interface, a pcap file, the eBPF program) reports.
struct CaptureSourceStats {
  std::string source;    // label value, e.g. "eth0", "ebpf:eth0", "trace.pcap"
  uint64_t packets = 0;  // handed to the parser
  uint64_t bytes = 0;
  uint64_t skipped_packets = 0;  // of connections whose record was final, not handed on
  uint64_t skipped_bytes = 0;
  std::vector<std::pair<std::string, uint64_t>> drops;  // reason -> packets lost
  // Packets the capture back end decapsulated itself (the eBPF programs), by tunnel type:
  // pgtlsmon_capture_tunnel_packets_total{source,type}. Empty: not exported for this source.
  std::vector<std::pair<std::string, uint64_t>> tunnel_packets;
  // Reads of the source's own counters (eBPF maps, pcap_stats) that failed: the values above
  // are then the last ones read, never zeros. pgtlsmon_stats_read_errors_total.
  uint64_t read_errors = 0;
};

// A snapshot of the pipeline's own counters, taken at scrape time.
struct PipelineStats {
  std::vector<CaptureSourceStats> sources;
  parser::ParseStats parse;
  uint64_t flows_active = 0;
  std::vector<std::pair<std::string, uint64_t>> evictions;  // reason -> flows dropped
  // Session records the live daemon could not write to its --session-log (disk full, I/O
  // error); unset when there is no session log, and then not exported.
  std::optional<uint64_t> session_log_errors;
  // Scrapes that got an older snapshot because the capture thread did not answer in time
  // (StatsSnapshot); unset where snapshots are not requested, and then not exported.
  std::optional<uint64_t> stale_scrapes;
};

class Metrics {
 public:
  struct Options {
    std::string version = "";        // pgtlsmon_build_info{version}; empty: the build's version
    std::string capture = "none";    // pgtlsmon_build_info{capture}: ebpf, pcap, replay, none
    size_t max_clients = 1000;       // distinct `client` values before new ones become "other"
    size_t max_servers = 1000;       // distinct `server` values before new ones become "other"
    size_t max_certificates = 1000;  // distinct certificate series, then "other"
  };

  Metrics();
  explicit Metrics(Options options);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Counts one final record (see the contract above). Never throws.
  void OnRecord(const parser::SessionRecord& r);

  // The provider is called on the scraping thread; it must be thread-safe. Pass nullptr to
  // stop exporting the pipeline metrics.
  void SetStatsProvider(std::function<PipelineStats()> provider);

  // Replaces pgtlsmon_build_info's `capture` label (e.g. once `auto` has picked a backend).
  void SetCaptureBackend(std::string_view capture);

  // Everything to expose: the registry's families plus the provider's. Hand this to
  // HttpServer::Start. Valid while this Metrics lives.
  std::shared_ptr<prometheus::Collectable> collectable() const;
  // The families counted here (without the provider's), for callers that add their own.
  std::shared_ptr<prometheus::Registry> registry() const;

  // Prometheus text format (version 0.0.4) of collectable().
  std::string SerializeText() const;
  // Writes SerializeText() to `path` atomically (temporary file in the same directory, fsync,
  // rename), as node_exporter's textfile collector expects. A path that exists and is not a
  // regular file (a device, a FIFO) is written in place. Errors name the file.
  absl::Status WriteTextFile(const std::string& path) const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace pgtlsmon::exporter
