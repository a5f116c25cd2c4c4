#include "app/watch.h"

#include <poll.h>
#include <sys/resource.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>

#include "CLI/CLI.hpp"
#include "app/pipeline.h"
#include "app/privileges.h"
#include "capture/live_source.h"
#include "exporter/http.h"
#include "exporter/metrics.h"
#include "exporter/record_json.h"
#include "exporter/stats_snapshot.h"
#include "exporter/web_config.h"
#include "fmt/core.h"

namespace pgtlsmon::app {
namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reopen{false};
std::atomic<bool> g_reload_web{false};

void OnStop(int) { g_stop.store(true); }
void OnHup(int) {
  g_reopen.store(true);
  g_reload_web.store(true);
}

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
  cmd->add_option("--web.config.file", o->web_config_file,
                  "TLS, client certificates, basic auth and headers for the endpoint, in the "
                  "Prometheus exporter-toolkit format (as node_exporter's --web.config.file); "
                  "SIGHUP reloads it, a bad file on reload keeps the one in force");
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

namespace {

// The live back end the flags ask for.
absl::StatusOr<std::unique_ptr<capture::LiveSource>> OpenSource(const WatchOptions& opts,
                                                                std::string* note) {
  capture::LiveSourceConfig cfg;
  cfg.interface = opts.interface;
  cfg.backend = opts.capture;
  cfg.ebpf_attach = opts.ebpf_attach;
  cfg.ports = opts.tracker.ports;
  cfg.any_port = opts.tracker.any_port;
  cfg.buffer_bytes = static_cast<size_t>(opts.buffer_mib) << 20;
  cfg.vxlan_ports = opts.tracker.decap.vxlan_ports;  // the same ports as the parser's
  cfg.geneve_ports = opts.tracker.decap.geneve_ports;
  return capture::OpenLiveSource(cfg, note);
}

// What MarkDone takes: the tracker's connection key as the back end's flow tuple.
capture::FlowTuple ToFlowTuple(const parser::FlowKey& key) {
  const auto lo = std::span(key.lo_ip.bytes).first(key.lo_ip.is_v6 ? 16 : 4);
  const auto hi = std::span(key.hi_ip.bytes).first(key.hi_ip.is_v6 ? 16 : 4);
  return capture::FlowTuple::From(lo, key.lo_port, hi, key.hi_port);
}

int64_t SteadySeconds(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

int RunWatch(WatchOptions opts) {
  // A malformed --listen is bad usage (exit 2), found before the capture is opened.
  if (auto st = exporter::HttpServer::CheckListenAddress(opts.listen); !st.ok()) {
    fmt::print(stderr, "pgtlsmon watch: --listen: {}\n", std::string(st.message()));
    return 2;
  }
  // So is a bad --web.config.file (exit 2 naming the key).
  exporter::WebConfig web;
  if (!opts.web_config_file.empty()) {
    auto loaded = exporter::LoadWebConfigFile(opts.web_config_file);
    if (!loaded.ok()) {
      fmt::print(stderr, "pgtlsmon watch: --web.config.file: {}\n",
                 std::string(loaded.status().message()));
      return 2;
    }
    web = std::move(*loaded);
  }
  // Every scraper connection takes a descriptor: use the hard limit (as Go programs such as
  // node_exporter do), so that the endpoint's connection limit, not the default soft limit of
  // 1024, is what applies.
  if (rlimit rl{}; getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, 65536);
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  InstallSignals();
  opts.tracker.ordered_output = false;  // live: a record goes out as soon as it is final

  SessionLog log;
  if (auto st = log.Open(opts.session_log); !st.ok()) {
    Log(std::string(st.message()));
    return 1;
  }

  std::string why_not_ebpf;
  auto opened = OpenSource(opts, &why_not_ebpf);
  if (!opened.ok()) {
    Log(std::string(opened.status().message()));
    return 1;
  }
  capture::LiveSource& src = **opened;
  // The capture is open: capabilities are dropped before any thread starts, since they are per
  // thread and threads inherit them. Only the TC attach point keeps one,
  // CAP_NET_ADMIN to detach its filters (or remove the qdisc it added) at exit.
  if (auto st = DropCapabilities(src.caps_to_keep()); !st.ok()) Log(std::string(st.message()));
  if (!why_not_ebpf.empty()) Log(why_not_ebpf);
  Log(fmt::format("capturing on {} with {}", opts.interface, src.description()));

  exporter::Metrics::Options mo;
  mo.capture = std::string(src.kind());
  mo.max_clients = opts.max_clients;
  exporter::Metrics metrics(mo);

  // What a scrape reads: a snapshot of the pipeline counters the capture loop takes when a
  // scrape asks (and every second), newer than the session counts beside it.
  exporter::StatsSnapshot snapshot;
  metrics.SetStatsProvider([&] { return snapshot.Fresh(std::chrono::milliseconds(1000)); });
  std::atomic<int64_t> last_loop_s{SteadySeconds(std::chrono::steady_clock::now())};
  auto healthy = [&] {
    return SteadySeconds(std::chrono::steady_clock::now()) - last_loop_s.load() < 10;
  };
  auto server =
      exporter::HttpServer::Start(opts.listen, metrics.collectable(), healthy, std::move(web));
  if (!server.ok()) {
    Log(std::string(server.status().message()));
    return 1;
  }
  // The bound port, so that --listen 127.0.0.1:0 says where it ended up.
  const std::string bound =
      opts.listen.substr(0, opts.listen.rfind(':') + 1) + std::to_string((*server)->port());
  Log(fmt::format("serving /metrics and /healthz on {}{}", bound,
                  (*server)->tls() ? " (HTTPS)" : ""));
  // SIGHUP reloads --web.config.file on this thread, not the capture loop's: the old daemon's
  // scrapes in flight wait for the capture loop's snapshot while the reload waits for them.
  std::mutex reload_mu;
  std::condition_variable reload_cv;
  bool reload_stop = false;
  std::thread reloader([&] {
    std::unique_lock<std::mutex> lock(reload_mu);
    while (true) {
      reload_cv.wait_for(lock, std::chrono::milliseconds(200));
      if (reload_stop) return;
      if (opts.web_config_file.empty() || !g_reload_web.exchange(false)) continue;
      auto next = exporter::LoadWebConfigFile(opts.web_config_file);
      absl::Status st = next.ok() ? (*server)->Reload(std::move(*next)) : next.status();
      if (!next.ok()) (*server)->CountFailedReload();
      if (st.ok()) {
        Log(fmt::format("reloaded --web.config.file {}{}", opts.web_config_file,
                        (*server)->tls() ? " (HTTPS)" : ""));
      } else {
        Log(
            fmt::format("reloading --web.config.file failed, the configuration in force stays: "
                        "{}",
                        std::string(st.message())));
      }
    }
  });
  struct JoinReloader {
    std::mutex& mu;
    std::condition_variable& cv;
    bool& stop;
    std::thread& t;
    ~JoinReloader() {
      {
        std::lock_guard<std::mutex> lock(mu);
        stop = true;
      }
      cv.notify_all();
      t.join();
    }
  } join_reloader{reload_mu, reload_cv, reload_stop, reloader};

  bool counted_session = false;  // since the last snapshot
  Pipeline pipeline(opts.tracker, [&](parser::SessionRecord&& r) {
    if (opts.what_if) opts.what_if->Annotate(&r);
    snapshot.Changed();  // before the session is counted: scrapes then ask for a new snapshot
    counted_session = true;
    metrics.OnRecord(r);
    log.Write(r);
  });
  // A failure to mark a flow done only costs copies, never records.
  pipeline.set_on_final([&](const parser::FlowKey& key) { (void)src.MarkDone(ToFlowTuple(key)); });
  capture::LiveStats source_stats;  // the back end's own counters, read at most once a second
  // A snapshot of the pipeline counters for the scrapes. read_source: also read the back end's
  // counters (kernel drops, eBPF skips: system calls); else the last ones read stand.
  auto refresh = [&](bool read_source) {
    const uint64_t ticket = snapshot.ticket();  // before reading: the counters are newer
    counted_session = false;
    if (read_source) source_stats = src.Counters();
    const parser::FlowTracker* trackers[] = {&pipeline.tracker()};
    snapshot.Publish(CollectStats(source_stats, pipeline.input(), trackers,
                                  log.enabled() ? std::optional(log.errors()) : std::nullopt),
                     ticket);
  };
  refresh(true);

  int rc = 0;
  auto next_housekeeping = std::chrono::steady_clock::now();
  capture::RawPacket pkt;
  while (!g_stop.load()) {
    // Short waits, so that a scrape waiting for a snapshot (below) is answered within ~50 ms.
    auto got = src.NextWithTimeout(&pkt, 50);
    if (!got.ok()) {
      Log(std::string(got.status().message()));
      rc = 1;
      break;
    }
    if (*got) {
      pipeline.OnPacket(pkt);
      // A packet that completed sessions: a snapshot at once (a few microseconds, no system
      // call), so that scrapes seldom wait for one.
      if (counted_session) refresh(false);
      // Look at the clock now and then; a waiting scrape at once.
      if ((pipeline.input().packets & 1023) != 0 && !snapshot.requested()) continue;
    }
    if (snapshot.requested()) refresh(false);
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_housekeeping) {
      next_housekeeping =
          now + std::chrono::milliseconds(static_cast<int64_t>(opts.stats_interval_s * 1000));
      pipeline.ExpireIdle(NowUs());
      refresh(true);
      log.Flush();
      // A failed SIGHUP reopen is retried quietly once per housekeeping.
      if (log.Stale() && log.Reopen().ok()) Log("session log reopened");
      last_loop_s = SteadySeconds(now);
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
      auto got = src.NextWithTimeout(&pkt, quiet_ms);
      if (!got.ok() || !*got) break;
      pipeline.OnPacket(pkt);
    }
  }
  // Connections still open get their records, the log is flushed.
  pipeline.Finish();
  refresh(true);
  log.Flush();
  Log(fmt::format("stopped after {} packets", pipeline.input().packets));
  return rc;
}

}  // namespace pgtlsmon::app
