// exporter/http.h: the live daemon's HTTP endpoint: /metrics and /healthz, on libmicrohttpd.
//
// libmicrohttpd (Debian's 0.9.75, TLS through GnuTLS) does the HTTP: parsing, keep-alive,
// pipelining, limits on header memory, idle timeouts, back-off when descriptors run out. Ours
// is the policy around it (exporter-toolkit's --web.config.file: TLS, client certificates,
// basic auth, headers, rate limit), content negotiation and gzip (exposition.h), and a reaper
// that closes connections which trickle a request head for longer than kRequestHeadTimeout
// (libmicrohttpd's timeout is an idle timeout: a client sending a byte every few seconds, a
// slowloris, would otherwise keep its connection for ever).
//
// Why not prometheus::Exposer (civetweb): it cannot register a handler that answers 503 for
// /healthz, and Debian's civetweb has no IPv6 and no TLS.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "absl/status/statusor.h"
#include "exporter/web_config.h"

namespace prometheus {
class Collectable;
}  // namespace prometheus

struct MHD_Connection;

namespace pgtlsmon::exporter {

class HttpServer {
 public:
  // Limits (tests/hostile/README.md shows them at work).
  static constexpr unsigned kConnectionLimit = 2048;
  static constexpr unsigned kIdleTimeoutS = 10;  // libmicrohttpd's connection timeout
  static constexpr auto kRequestHeadTimeout = std::chrono::seconds(10);
  static constexpr size_t kConnectionMemory =
      size_t{16} * 1024;  // request head buffer per connection

  // Starts serving on `listen_addr`, "IP:PORT" or "[IPv6]:PORT" (numeric; port 0 picks a free
  // one, see port()), with the web configuration `web` (default: plain HTTP, no auth).
  // GET/HEAD /metrics collects `metrics` (e.g. Metrics::collectable()); /healthz answers 200
  // "ok" when healthy() returns true (or is empty), else 503. Both callbacks run on the
  // server's threads, possibly several at once: they must be thread-safe. Returns
  // InvalidArgument for a malformed address, Unavailable when it cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::string& listen_addr, std::shared_ptr<prometheus::Collectable> metrics,
      std::function<bool()> healthy, WebConfig web = {});

  // Whether `listen_addr` is an address Start() accepts (InvalidArgument naming it if not),
  // without binding: lets the caller reject bad usage before opening anything.
  static absl::Status CheckListenAddress(const std::string& listen_addr);

  // Serves with `web` from now on, on the same listening socket (no connection is refused
  // meanwhile): a new libmicrohttpd daemon takes over, the old one stops accepting, finishes
  // its requests in flight (up to 1 s) and stops. On failure the old configuration stays and
  // the error says why. Either way counted in pgtlsmon_web_config_reloads_total{result}.
  // Not to be called concurrently with itself.
  absl::Status Reload(WebConfig web);
  // Counts a reload that failed before Reload() (e.g. the file did not parse).
  void CountFailedReload();

  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }  // the bound port
  bool tls() const;                   // whether the current configuration serves HTTPS

 private:
  friend struct HttpServerAccess;  // the libmicrohttpd callbacks (http.cc)
  struct Instance;                 // one libmicrohttpd daemon with its configuration
  struct ConnState {               // an open connection, for the reaper
    int fd = -1;
    std::chrono::steady_clock::time_point waiting_since;  // for a request head
    bool in_request = false;
    bool reaped = false;
  };
  // Counters exported with the metrics (pgtlsmon_http_*, pgtlsmon_web_config_*).
  static constexpr int kCodes[] = {200, 400, 401, 403, 404, 405, 429, 500, 503};
  struct Counters {
    std::atomic<uint64_t> responses[std::size(kCodes)] = {};  // by status code
    std::atomic<uint64_t> reaped{0};  // closed by the reaper (slow request head)
    std::atomic<uint64_t> reloads_ok{0};
    std::atomic<uint64_t> reloads_failed{0};
    std::atomic<bool> last_reload_ok{true};
  };

  HttpServer() = default;
  absl::StatusOr<std::unique_ptr<Instance>> Launch(WebConfig web);
  void Reap();

  std::shared_ptr<prometheus::Collectable> metrics_;
  std::function<bool()> healthy_;
  int listen_fd_ = -1;
  int port_ = 0;
  mutable std::mutex mu_;  // guards current_
  std::unique_ptr<Instance> current_;

  // Connections of every daemon, for the reaper and pgtlsmon_http_open_connections.
  std::mutex conn_mu_;
  std::unordered_map<MHD_Connection*, ConnState> conns_;
  std::thread reaper_;
  std::mutex reaper_mu_;
  std::condition_variable reaper_cv_;
  bool stopping_ = false;  // guarded by reaper_mu_
  Counters counters_;
};

}  // namespace pgtlsmon::exporter
