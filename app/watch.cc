#include "app/watch.h"

#include <poll.h>
#include <signal.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>

#include "CLI/CLI.hpp"
#include "app/live_backend.h"
#include "app/privileges.h"
#include "exporter/http.h"
#include "exporter/metrics.h"
#include "exporter/record_json.h"
#include "fmt/core.h"
#include "parser/packet_decoder.h"

namespace pgtlsmon::app {
namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reopen{false};

void OnStop(int) { g_stop.store(true); }
void OnHup(int) { g_reopen.store(true); }

void InstallSignals() {
  struct sigaction sa {};
  sa.sa_handler = OnStop;  // no SA_RESTART: poll() returns EINTR at once
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  sa.sa_handler = OnHup;
  sigaction(SIGHUP, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

uint64_t NowUs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

void Log(const std::string& msg) { fmt::print(stderr, "pgtlsmon: {}\n", msg); }

// The session log: JSON lines appended; SIGHUP reopens it (logrotate's convention).
class SessionLog {
 public:
  absl::Status Open(const std::string& path) {
    path_ = path;
    return Reopen();
  }
  // Opens the path anew. If that fails, records keep going to the file already open (after a
  // rotation, the renamed one) instead of nowhere, and Stale() asks the caller to retry.
  absl::Status Reopen() {
    if (path_.empty()) return absl::OkStatus();
    FILE* f = std::fopen(path_.c_str(), "a");
    if (f == nullptr) {
      const int err = errno;
      stale_ = f_ != nullptr;
      return absl::ErrnoToStatus(
          err, fmt::format("cannot open session log {}{}", path_,
                           stale_ ? " (still writing to the file open before; retrying)" : ""));
    }
    if (f_ != nullptr && std::fclose(f_) != 0) ++errors_;
    f_ = f;
    stale_ = false;
    return absl::OkStatus();
  }
  bool Stale() const { return stale_; }
  void Write(const parser::SessionRecord& r) {
    if (f_ == nullptr) return;
    buf_.clear();
    exporter::AppendRecordJson(r, &buf_);
    if (std::fwrite(buf_.data(), 1, buf_.size(), f_) != buf_.size()) ++errors_;
    dirty_ = true;
  }
  void Flush() {
    if (f_ != nullptr && dirty_ && std::fflush(f_) != 0) ++errors_;
    dirty_ = false;
  }
  ~SessionLog() {
    if (f_ != nullptr) std::fclose(f_);
  }
  bool enabled() const { return !path_.empty(); }
  // Records (or flushes) that failed: disk full, I/O error. pgtlsmon_session_log_errors_total.
  uint64_t errors() const { return errors_; }

 private:
  std::string path_;
  FILE* f_ = nullptr;
  std::string buf_;
  bool dirty_ = false;
  bool stale_ = false;
  uint64_t errors_ = 0;
};

}  // namespace

void AddWatchFlags(CLI::App* cmd, WatchOptions* o) {
  cmd->add_option("--interface,-i", o->interface,
                  "interface to capture on ('any' for all interfaces; with --capture ebpf, "
                  "'any' attaches to every interface at once)")
      ->required();
  cmd->add_option("--capture", o->capture,
                  "capture back end: ebpf (kernel passes only handshake bytes), pcap (libpcap), "
                  "or auto (try ebpf, fall back to pcap and say so)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "ebpf", "pcap"}));
  cmd->add_option("--ebpf-attach", o->ebpf_attach,
                  "eBPF attach point: socket (socket filter on an AF_PACKET ring; passive, works "
                  "on 'any') or tc (TC classifier on the interface's clsact qdisc + BPF ring "
                  "buffer; one interface, adds the qdisc if missing and needs CAP_NET_ADMIN)")
      ->capture_default_str()
      ->check(CLI::IsMember({"socket", "tc"}));
  cmd->add_option("--listen", o->listen,
                  "address:port serving /metrics and /healthz ([v6addr]:port for IPv6); "
                  "loopback by default, open it up deliberately (e.g. 0.0.0.0:9433)")
      ->capture_default_str();
  cmd->add_option("--session-log", o->session_log,
                  "append one JSON record per connection to this file; SIGHUP reopens it");
  cmd->add_option("--buffer-size", o->buffer_mib,
                  "capture buffer in MiB (libpcap kernel buffer, or the eBPF socket's ring)")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--max-clients", o->max_clients,
                  "distinct `client` label values before new clients count as \"other\"")
      ->capture_default_str();
}

int RunWatch(WatchOptions opts) {
  // A malformed --listen is bad usage (exit 2), found before the capture is opened.
  if (auto st = exporter::HttpServer::CheckListenAddress(opts.listen); !st.ok()) {
    fmt::print(stderr, "pgtlsmon watch: --listen: {}\n", std::string(st.message()));
    return 2;
  }
  InstallSignals();
  opts.tracker.ordered_output = false;  // live: a record goes out as soon as it is final

  SessionLog log;
  if (auto st = log.Open(opts.session_log); !st.ok()) {
    Log(std::string(st.message()));
    return 1;
  }

  std::string why_not_ebpf;
  auto backend = OpenLiveBackend(opts, &why_not_ebpf);
  if (!backend.ok()) {
    Log(std::string(backend.status().message()));
    return 1;
  }
  LiveBackend& src = **backend;
  // The capture is open: capabilities are dropped before any thread starts, since they are per
  // thread and threads inherit them. Only the TC attach point keeps one,
  // CAP_NET_ADMIN to detach its filters (or remove the qdisc it added) at exit.
  if (auto st = DropCapabilities(src.caps_to_keep()); !st.ok()) Log(std::string(st.message()));
  if (!why_not_ebpf.empty()) Log(why_not_ebpf);
  Log(fmt::format("capturing on {} with {}", opts.interface, src.description()));

  exporter::Metrics::Options mo;
  mo.capture = src.kind();
  mo.max_clients = opts.max_clients;
  exporter::Metrics metrics(mo);

  // What the scrape thread reads: a snapshot the capture loop refreshes every second.
  std::mutex snap_mu;
  exporter::PipelineStats snapshot;
  metrics.SetStatsProvider([&] {
    std::lock_guard<std::mutex> lock(snap_mu);
    return snapshot;
  });
  std::atomic<int64_t> last_loop_s{0};
  auto healthy = [&] {
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::steady_clock::now().time_since_epoch())
                         .count();
    return now - last_loop_s.load() < 10;
  };
  last_loop_s = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::steady_clock::now().time_since_epoch())
                    .count();
  auto server = exporter::HttpServer::Start(opts.listen, metrics.collectable(), healthy);
  if (!server.ok()) {
    Log(std::string(server.status().message()));
    return 1;
  }
  // The bound port, so that --listen 127.0.0.1:0 says where it ended up.
  const std::string bound =
      opts.listen.substr(0, opts.listen.rfind(':') + 1) + std::to_string((*server)->port());
  Log(fmt::format("serving /metrics and /healthz on {}", bound));

  parser::FlowTracker tracker(opts.tracker, [&](parser::SessionRecord&& r) {
    metrics.OnRecord(r);
    log.Write(r);
  });
  tracker.set_on_final([&](const parser::FlowKey& key) { src.MarkDone(key); });

  parser::ParseStats decode_stats;
  exporter::CaptureSourceStats counted;
  auto refresh = [&] {
    exporter::PipelineStats ps;
    exporter::CaptureSourceStats cs = src.Stats();
    cs.packets = counted.packets;
    cs.bytes = counted.bytes;
    cs.skipped_packets += tracker.stats().skipped_segments;
    cs.skipped_bytes += tracker.stats().skipped_bytes;
    ps.sources.push_back(std::move(cs));
    ps.parse = tracker.parse_stats();
    ps.parse.Merge(decode_stats);
    ps.flows_active = tracker.active_flows();
    if (log.enabled()) ps.session_log_errors = log.errors();
    for (size_t i = 0; i < static_cast<size_t>(parser::EvictionReason::kCount); ++i) {
      ps.evictions.emplace_back(parser::EvictionReasonName(static_cast<parser::EvictionReason>(i)),
                                tracker.stats().evictions[i]);
    }
    std::lock_guard<std::mutex> lock(snap_mu);
    snapshot = std::move(ps);
  };
  refresh();

  int rc = 0;
  auto next_housekeeping = std::chrono::steady_clock::now();
  capture::RawPacket pkt;
  parser::TcpSegment seg;
  auto process = [&] {
    ++counted.packets;
    counted.bytes += pkt.caplen;
    if (parser::DecodeTcpSegment(pkt.linktype, pkt.data, opts.tracker.decap, &seg, &decode_stats) ==
        parser::ParseResult::kOk) {
      tracker.OnSegment(seg, pkt.ts_ns / 1000);
    }
  };
  while (!g_stop.load()) {
    auto got = src.Next(&pkt, 200);
    if (!got.ok()) {
      Log(std::string(got.status().message()));
      rc = 1;
      break;
    }
    if (*got) {
      process();
      if ((counted.packets & 1023) != 0) continue;  // look at the clock now and then
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_housekeeping) {
      next_housekeeping =
          now + std::chrono::milliseconds(static_cast<int64_t>(opts.stats_interval_s * 1000));
      tracker.ExpireIdle(NowUs());
      refresh();
      log.Flush();
      // A failed SIGHUP reopen is retried quietly once per housekeeping.
      if (log.Stale() && log.Reopen().ok()) Log("session log reopened");
      last_loop_s =
          std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    }
    if (g_reopen.exchange(false)) {
      log.Flush();
      if (auto st = log.Reopen(); !st.ok())
        Log(std::string(st.message()));
      else
        Log("session log reopened");
    }
  }
  // A clean stop. What the kernel captured before the signal belongs to this run: without
  // this drain, a connection made just before SIGTERM whose packets still sat in the capture
  // buffer got no record (or, cut after its first packets, a wrong one). Bounded, so a busy
  // interface cannot hold up the stop; quiet for longer than the ring's block timeout ends it.
  if (rc == 0) {
    const auto drain_until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    const int quiet_ms = src.max_delivery_delay_ms() + 20;
    while (std::chrono::steady_clock::now() < drain_until) {
      auto got = src.Next(&pkt, quiet_ms);
      if (!got.ok() || !*got) break;
      process();
    }
  }
  // Connections still open get their records, the log is flushed.
  tracker.Finish();
  refresh();
  log.Flush();
  Log(fmt::format("stopped after {} packets", counted.packets));
  return rc;
}

}  // namespace pgtlsmon::app
