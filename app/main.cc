// pgtlsmon: a passive TLS monitor for PostgreSQL.
//
// Flags and wiring only: capture/ reads packets, parser/ turns them into session records,
// exporter/ publishes them.
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "app/replay.h"
#include "app/watch.h"
#include "app/what_if.h"
#include "capture/capture_set.h"
#include "fmt/core.h"

namespace pgtlsmon::app {
namespace {

constexpr int kExitUsage = 2;

// "5432,6432": a comma-separated list of ports for `flag`.
bool ParsePortList(const char* flag, const std::string& text, std::vector<uint16_t>* out,
                   std::string* err) {
  out->clear();
  for (absl::string_view p : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    uint32_t port = 0;
    if (!absl::SimpleAtoi(p, &port) || port == 0 || port > 65535) {
      *err = fmt::format("{}: '{}' is not a port number (1-65535){}", flag, std::string(p),
                         std::string_view(flag) == "--ports" ? " or 'any'" : "");
      return false;
    }
    out->push_back(static_cast<uint16_t>(port));
  }
  if (out->empty()) {
    *err = fmt::format("{}: give at least one port{}", flag,
                       std::string_view(flag) == "--ports" ? ", or 'any'" : "");
    return false;
  }
  return true;
}

// "5432,6432" or "any".
bool ParsePorts(const std::string& text, parser::FlowTrackerConfig* cfg, std::string* err) {
  if (text == "any") {
    cfg->any_port = true;
    cfg->ports.clear();
    return true;
  }
  return ParsePortList("--ports", text, &cfg->ports, err);
}

// Flow-table flags shared by replay and watch.
struct TrackerFlags {
  std::string ports = "5432";
  size_t max_flows = 262144;
  double idle_timeout_s = 600;
  size_t stream_cap = 16 * 1024 + 5;
  std::string vxlan_ports = "4789,8472";
  std::string geneve_ports = "6081";

  void Add(CLI::App* cmd) {
    cmd->add_option("--ports", ports,
                    "TCP ports that carry PostgreSQL, comma-separated, or 'any' to recognise "
                    "PostgreSQL startup traffic and TLS by content on every port")
        ->capture_default_str();
    cmd->add_option("--max-flows", max_flows,
                    "connection table size; when full, the oldest connection is evicted "
                    "(counted in pgtlsmon_flow_evictions_total{reason=\"table_full\"})")
        ->capture_default_str()
        ->check(CLI::Range(size_t{16}, size_t{1} << 26));
    cmd->add_option("--idle-timeout", idle_timeout_s,
                    "seconds of silence (capture time) after which a connection is dropped")
        ->capture_default_str()
        ->check(CLI::Range(1.0, 86400.0 * 7));
    cmd->add_option("--reassembly-cap", stream_cap,
                    "bytes buffered per direction of a connection while its handshake is "
                    "parsed (one full TLS record needs 16389)")
        ->capture_default_str()
        ->check(CLI::Range(size_t{1024}, size_t{1} << 24));
    cmd->add_option("--vxlan-ports", vxlan_ports,
                    "UDP destination ports whose datagrams are decapsulated as VXLAN, "
                    "comma-separated (replaces the default; at most 8 with --capture ebpf, "
                    "whose programs decapsulate in the kernel)")
        ->capture_default_str();
    cmd->add_option("--geneve-ports", geneve_ports,
                    "UDP destination ports whose datagrams are decapsulated as GENEVE, "
                    "comma-separated (replaces the default; at most 8 with --capture ebpf, "
                    "whose programs decapsulate in the kernel)")
        ->capture_default_str();
  }
  bool Apply(parser::FlowTrackerConfig* cfg, std::string* err) const {
    if (!ParsePorts(ports, cfg, err)) return false;
    if (!ParsePortList("--vxlan-ports", vxlan_ports, &cfg->decap.vxlan_ports, err) ||
        !ParsePortList("--geneve-ports", geneve_ports, &cfg->decap.geneve_ports, err)) {
      return false;
    }
    cfg->max_flows = max_flows;
    cfg->idle_timeout_us = static_cast<uint64_t>(idle_timeout_s * 1e6);
    cfg->stream_cap = stream_cap;
    return true;
  }
};

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{
      "pgtlsmon: passive TLS monitor for PostgreSQL.\n"
      "Watches PostgreSQL connections from the side and reports, per connection, the TLS\n"
      "version and cipher negotiated, failed handshakes, and sessions in clear. It never\n"
      "sends a packet and never connects to the server.",
      "pgtlsmon"};
  app.set_version_flag("--version", std::string("pgtlsmon ") + PGTLS_VERSION);
  app.require_subcommand(1);

  ReplayOptions replay;
  TrackerFlags replay_tracker;
  CLI::App* rp = app.add_subcommand(
      "replay",
      "Read capture files (pcap, pcapng; plain or compressed with gzip, zstd or xz, recognised "
      "by content) and write one session record per PostgreSQL connection. Files, directories "
      "(recursed; files that are not captures are skipped) and globs are one capture: files "
      "that follow each other in time continue each other's connections, overlapping ones are "
      "merged by timestamp; the order on the command line does not matter. A damaged file "
      "yields every record before the damage, the job goes on, and the exit code is 1.");
  rp->add_option("--format", replay.format,
                 "table: a readable per-session table and a summary; jsonl: one JSON record per "
                 "line (docs/session-record.md)")
      ->capture_default_str()
      ->check(CLI::IsMember({"table", "jsonl"}));
  rp->add_option("--output,-o", replay.output, "write records here instead of standard output");
  rp->add_option("--metrics-file", replay.metrics_file,
                 "after the replay, write the metrics in Prometheus text format (for "
                 "node_exporter's textfile collector), atomically (a device or FIFO such as "
                 "/dev/stdout is written in place)");
  rp->add_option("--max-clients", replay.max_clients,
                 "distinct `client` label values before new clients count as \"other\"")
      ->capture_default_str();
  rp->add_option("--threads", replay.threads,
                 "worker threads (default 0: the cores available; 1: no threads). One reader "
                 "decodes every packet and hands each connection's to the worker owning it (a "
                 "symmetric hash of the innermost addresses and ports); records and metrics come "
                 "out as with 1 (first-packet order) while no worker's table (its share of "
                 "--max-flows) overflows")
      ->capture_default_str()
      ->check(CLI::Range(0, 256));
  rp->add_flag("!--no-progress", replay.progress,
               "do not show progress on stderr (shown only when stderr is a terminal)");
  rp->add_flag("--progress", replay.force_progress,
               "show the progress line (files, MB, MB/s, ETA) even when stderr is not a terminal");
  std::string since;
  std::string until;
  rp->add_option("--since", since,
                 "read only packets at or after T: RFC 3339 (2026-03-01T00:00:00Z, "
                 "2026-03-01T01:00:00+01:00) or seconds since the epoch (1772323200.5)");
  rp->add_option("--until", until,
                 "read only packets before T (same forms as --since); files whose first packet "
                 "is at or after T are not read");
  rp->add_option("--filter", replay.filter,
                 "libpcap filter expression (as tcpdump takes it, e.g. 'host 10.0.0.5'), "
                 "compiled for each file's link type and applied before parsing; packets left "
                 "out by --since/--until/--filter are counted in the summary");
  replay_tracker.Add(rp);
  WhatIfFlags replay_what_if;
  replay_what_if.Add(rp);
  rp->add_option("captures", replay.captures,
                 "capture files, directories and globs ('-' for standard input)")
      ->required();

  WatchOptions watch;
  TrackerFlags watch_tracker;
  watch_tracker.idle_timeout_s = 3600;
  CLI::App* wp = app.add_subcommand(
      "watch",
      "Capture live on an interface and serve Prometheus metrics (/metrics) and /healthz.");
  AddWatchFlags(wp, &watch);
  watch_tracker.Add(wp);
  WhatIfFlags watch_what_if;
  watch_what_if.Add(wp);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; bad usage exits 2 with a message naming the flag.
    const int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }

  std::string err;
  if (rp->parsed()) {
    if (!replay_tracker.Apply(&replay.tracker, &err)) {
      fmt::print(stderr, "pgtlsmon replay: {}\n", err);
      return kExitUsage;
    }
    if (const int rc = replay_what_if.Apply("replay", &replay.what_if, &replay.tracker); rc != 0) {
      return rc;
    }
    for (auto [flag, text, dst] : {std::tuple{"--since", &since, &replay.since_ns},
                                   std::tuple{"--until", &until, &replay.until_ns}}) {
      if (text->empty()) continue;
      auto t = capture::ParseTimeArg(*text);
      if (!t.ok()) {
        fmt::print(stderr, "pgtlsmon replay: {}: {}\n", flag, std::string(t.status().message()));
        return kExitUsage;
      }
      *dst = *t;
    }
    if (replay.since_ns && replay.until_ns && *replay.until_ns <= *replay.since_ns) {
      fmt::print(stderr, "pgtlsmon replay: --until must be after --since\n");
      return kExitUsage;
    }
    if (!replay.filter.empty()) {
      if (auto st = capture::ValidateFilter(replay.filter); !st.ok()) {
        fmt::print(stderr, "pgtlsmon replay: --filter '{}': {}\n", replay.filter,
                   std::string(st.message()));
        return kExitUsage;
      }
    }
    return RunReplay(replay);
  }
  if (!watch_tracker.Apply(&watch.tracker, &err)) {
    fmt::print(stderr, "pgtlsmon watch: {}\n", err);
    return kExitUsage;
  }
  if (const int rc = watch_what_if.Apply("watch", &watch.what_if, &watch.tracker); rc != 0) {
    return rc;
  }
  return RunWatch(watch);
}

}  // namespace pgtlsmon::app

int main(int argc, char** argv) {
  // Modules catch and convert what they throw (docs/STYLE.md section 3); what still arrives
  // here (std::bad_alloc) ends the run with a message and exit 1 rather than std::terminate.
  try {
    return pgtlsmon::app::Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pgtlsmon: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "pgtlsmon: unknown exception\n");
  }
  return 1;
}
