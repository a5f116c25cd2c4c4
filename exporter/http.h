// exporter/http.h: the live daemon's HTTP endpoint: /metrics and /healthz.
//
// A deliberately small HTTP/1.x server on plain sockets (GET/HEAD, one request per connection,
// bounded request size and time): one thread accepts, a small fixed pool of worker threads
// serves (so a slow or stalled client does not hold up the other scrapers), and beyond a
// bounded queue of accepted connections it answers 503 at once (tests/hostile/README.md:
// 50 concurrent scrapers). Why not prometheus::Exposer/civetweb: prometheus-cpp 1.0's
// Exposer cannot register a non-metrics handler (/healthz must be able to answer 503), and
// Debian's civetweb is built without IPv6, while `--listen [::1]:9433` must work.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace prometheus {
class Collectable;
}  // namespace prometheus

namespace pgtlsmon::exporter {

class HttpServer {
 public:
  // Starts serving on `listen_addr`, "IP:PORT" or "[IPv6]:PORT" (numeric; port 0 picks a free
  // one, see port()). GET /metrics collects `metrics` (e.g. Metrics::collectable(), or a
  // prometheus::Registry) in Prometheus text format 0.0.4; GET /healthz answers 200 "ok" when
  // healthy() returns true (or is empty), else 503. Both callbacks run on the server's worker
  // threads, possibly several at once: they must be thread-safe. Returns InvalidArgument
  // for a malformed address and Unavailable when it cannot be bound (in use, not local, ...).
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::string& listen_addr, std::shared_ptr<prometheus::Collectable> metrics,
      std::function<bool()> healthy);

  // Whether `listen_addr` is an address Start() accepts (InvalidArgument naming it if not),
  // without binding: lets the caller reject bad usage before opening anything.
  static absl::Status CheckListenAddress(const std::string& listen_addr);

  // Stops serving (requests in progress are finished or time out; queued ones are closed) and
  // joins the threads.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }  // the bound port

 private:
  HttpServer() = default;
  void Run();
  void Work();
  void Serve(int conn);
  std::string Respond(const std::string& request, bool* head) const;

  std::shared_ptr<prometheus::Collectable> metrics_;
  std::function<bool()> healthy_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // eventfd: written once to stop Run()
  int port_ = 0;
  std::thread thread_;                // accepts
  std::vector<std::thread> workers_;  // serve
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<int> queue_;  // accepted connections waiting for a worker (guarded by mu_)
  bool stopping_ = false;  // guarded by mu_
};

}  // namespace pgtlsmon::exporter
