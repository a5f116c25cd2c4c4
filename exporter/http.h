// exporter/http.h: the live daemon's HTTP endpoint: /metrics and /healthz.
//
// A deliberately small HTTP/1.x server on plain sockets (GET/HEAD, one request per connection,
// bounded request size and time), run by one thread. Why not prometheus::Exposer/civetweb:
// prometheus-cpp 1.0's Exposer cannot register a non-metrics handler (/healthz must be able to
// answer 503), and Debian's civetweb is built without IPv6, while `--listen [::1]:9433` must
// work. Scrapes are rare and cheap, so serving them one at a time is enough.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

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
  // healthy() returns true (or is empty), else 503. Both callbacks run on the server's thread:
  // they must be thread-safe with respect to the rest of the program. Returns InvalidArgument
  // for a malformed address and Unavailable when it cannot be bound (in use, not local, ...).
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::string& listen_addr, std::shared_ptr<prometheus::Collectable> metrics,
      std::function<bool()> healthy);

  // Whether `listen_addr` is an address Start() accepts (InvalidArgument naming it if not),
  // without binding: lets the caller reject bad usage before opening anything.
  static absl::Status CheckListenAddress(const std::string& listen_addr);

  ~HttpServer();  // stops serving (a request in progress is finished or times out) and joins
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }  // the bound port

 private:
  HttpServer() = default;
  void Run();
  void Serve(int conn);
  std::string Respond(const std::string& request, bool* head) const;

  std::shared_ptr<prometheus::Collectable> metrics_;
  std::function<bool()> healthy_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // eventfd: written once to stop Run()
  int port_ = 0;
  std::thread thread_;
};

}  // namespace pgtlsmon::exporter
