// exporter/http.h: the live daemon's HTTP endpoint: /metrics and /healthz.
//
// Built on civetweb (the server prometheus-cpp's Exposer wraps, same shared library). We drive
// CivetServer directly because prometheus-cpp 1.0's Exposer cannot register a non-metrics
// handler, and /healthz must answer 503 when unhealthy.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

class CivetServer;

namespace prometheus {
class Collectable;
}  // namespace prometheus

namespace pgtlsmon::exporter {

class HttpServer {
 public:
  // Starts serving on `listen_addr`, "IP:PORT" or "[IPv6]:PORT" (numeric; port 0 picks a free
  // one, see port()). GET /metrics collects `metrics` (e.g. Metrics::collectable(), or a
  // prometheus::Registry) in Prometheus text format 0.0.4; GET /healthz answers 200 "ok" when
  // healthy() returns true, else 503. Both callbacks run on the server's worker threads (two),
  // possibly concurrently: they must be thread-safe. Returns InvalidArgument for a malformed
  // address and Unavailable when the address cannot be bound (e.g. already in use).
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::string& listen_addr, std::shared_ptr<prometheus::Collectable> metrics,
      std::function<bool()> healthy);

  ~HttpServer();  // stops the server and joins its threads
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }  // the bound port

 private:
  struct Handlers;
  HttpServer() = default;

  std::unique_ptr<Handlers> handlers_;  // outlives server_ (destroyed after it)
  std::unique_ptr<CivetServer> server_;
  int port_ = 0;
};

}  // namespace pgtlsmon::exporter
