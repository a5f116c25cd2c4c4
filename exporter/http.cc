#include "exporter/http.h"

#include <arpa/inet.h>

#include <CivetServer.h>
#include <civetweb.h>

#include <charconv>
#include <exception>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fmt/format.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "prometheus/text_serializer.h"

namespace pgtlsmon::exporter {
namespace {

// civetweb reports why mg_start failed through log_message, on the thread calling it.
thread_local std::string* start_errors = nullptr;

int LogMessage(const struct mg_connection* /*conn*/, const char* message) {
  if (start_errors != nullptr && message != nullptr) {
    if (!start_errors->empty()) start_errors->append("; ");
    start_errors->append(message);
  }
  return 1;  // handled: civetweb prints nothing itself
}

void Send(mg_connection* conn, int status, const char* content_type, std::string_view body) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
            status, mg_get_response_code_text(conn, status), content_type, body.size());
  mg_write(conn, body.data(), body.size());
}

class MetricsHandler : public CivetHandler {
 public:
  explicit MetricsHandler(std::shared_ptr<prometheus::Collectable> c) : collectable_(std::move(c)) {}

  bool handleGet(CivetServer* /*server*/, mg_connection* conn) override {
    std::string body;
    try {
      body = prometheus::TextSerializer().Serialize(collectable_->Collect());
    } catch (const std::exception& e) {
      Send(conn, 500, "text/plain; charset=utf-8", absl::StrCat("collect failed: ", e.what()));
      return true;
    }
    Send(conn, 200, "text/plain; version=0.0.4; charset=utf-8", body);
    return true;
  }

 private:
  std::shared_ptr<prometheus::Collectable> collectable_;
};

class HealthHandler : public CivetHandler {
 public:
  explicit HealthHandler(std::function<bool()> healthy) : healthy_(std::move(healthy)) {}

  bool handleGet(CivetServer* /*server*/, mg_connection* conn) override {
    bool ok = false;
    try {
      ok = !healthy_ || healthy_();
    } catch (const std::exception&) {
      ok = false;
    }
    if (ok) {
      Send(conn, 200, "text/plain; charset=utf-8", "ok\n");
    } else {
      Send(conn, 503, "text/plain; charset=utf-8", "unhealthy\n");
    }
    return true;
  }

 private:
  std::function<bool()> healthy_;
};

// Checks "IP:PORT" / "[IPv6]:PORT"; returns whether the host is IPv6.
absl::StatusOr<bool> ParseListenAddr(std::string_view addr) {
  const auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        fmt::format("listen address '{}': {} (expected IP:PORT or [IPv6]:PORT, e.g. "
                    "127.0.0.1:9433)",
                    addr, why));
  };
  std::string host;
  std::string_view port;
  bool v6 = false;
  if (!addr.empty() && addr.front() == '[') {
    const size_t close = addr.find(']');
    if (close == std::string_view::npos || close + 1 >= addr.size() || addr[close + 1] != ':') {
      return bad("missing ']:' after the IPv6 address");
    }
    host = std::string(addr.substr(1, close - 1));
    port = addr.substr(close + 2);
    v6 = true;
  } else {
    const size_t colon = addr.rfind(':');
    if (colon == std::string_view::npos) return bad("missing ':PORT'");
    host = std::string(addr.substr(0, colon));
    port = addr.substr(colon + 1);
    if (host.find(':') != std::string::npos) return bad("IPv6 addresses go in brackets");
  }
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535) {
    return bad("bad port");
  }
  unsigned char buf[16];
  if (inet_pton(v6 ? AF_INET6 : AF_INET, host.c_str(), buf) != 1) {
    return bad("not a numeric IP address");
  }
  return v6;
}

}  // namespace

struct HttpServer::Handlers {
  Handlers(std::shared_ptr<prometheus::Collectable> c, std::function<bool()> h)
      : metrics(std::move(c)), health(std::move(h)) {}
  MetricsHandler metrics;
  HealthHandler health;
};

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const std::string& listen_addr, std::shared_ptr<prometheus::Collectable> metrics,
    std::function<bool()> healthy) {
  if (!metrics) return absl::InvalidArgumentError("HttpServer::Start: no metrics to serve");
  absl::StatusOr<bool> v6 = ParseListenAddr(listen_addr);
  if (!v6.ok()) return v6.status();
  if (*v6 && mg_check_feature(8) == 0) {
    return absl::UnimplementedError(
        absl::StrCat("listen address '", listen_addr, "': civetweb was built without IPv6"));
  }

  std::unique_ptr<HttpServer> s(new HttpServer());
  s->handlers_ = std::make_unique<Handlers>(std::move(metrics), std::move(healthy));
  const std::vector<std::string> options = {
      "listening_ports", listen_addr,
      "num_threads", "2",
      "request_timeout_ms", "10000",
      "enable_keep_alive", "no",
  };
  CivetCallbacks callbacks;
  callbacks.log_message = &LogMessage;
  std::string errors;
  start_errors = &errors;
  try {
    s->server_ = std::make_unique<CivetServer>(options, &callbacks);
  } catch (const std::exception& e) {
    start_errors = nullptr;
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen_addr, ": ",
                                               errors.empty() ? e.what() : errors));
  }
  start_errors = nullptr;
  if (s->server_->getContext() == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen_addr, ": ", errors));
  }
  s->server_->addHandler("/metrics", s->handlers_->metrics);
  s->server_->addHandler("/healthz", s->handlers_->health);
  const std::vector<int> ports = s->server_->getListeningPorts();
  s->port_ = ports.empty() ? 0 : ports.front();
  return s;
}

HttpServer::~HttpServer() {
  if (server_) server_->close();
  server_.reset();
}

}  // namespace pgtlsmon::exporter
