#include "exporter/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <exception>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "fmt/format.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "prometheus/text_serializer.h"

namespace pgtlsmon::exporter {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kMaxRequestBytes = 8192;
constexpr auto kReadTimeout = std::chrono::seconds(5);
constexpr auto kWriteTimeout = std::chrono::seconds(10);
// Worker threads: concurrent scrapes (Prometheus HA pairs, dashboards, a curl) and slow
// clients each hold one for at most the read + write timeouts.
constexpr size_t kWorkers = 8;
// Accepted connections waiting for a worker; beyond this, 503 at once.
constexpr size_t kMaxQueued = 256;
constexpr int kListenBacklog = 512;

struct ListenAddr {
  sockaddr_storage storage{};
  socklen_t len = 0;
  int family = AF_INET;
};

absl::StatusOr<ListenAddr> ParseListenAddr(std::string_view addr) {
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
  ListenAddr out;
  if (v6) {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(static_cast<uint16_t>(value));
    if (inet_pton(AF_INET6, host.c_str(), &a.sin6_addr) != 1) return bad("not an IPv6 address");
    std::memcpy(&out.storage, &a, sizeof(a));
    out.len = sizeof(a);
    out.family = AF_INET6;
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(value));
    if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) {
      return bad("not a numeric IP address");
    }
    std::memcpy(&out.storage, &a, sizeof(a));
    out.len = sizeof(a);
    out.family = AF_INET;
  }
  return out;
}

int RemainingMs(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(left);
}

// Waits for `events` on fd until the deadline; false on timeout or error.
bool WaitFor(int fd, short events, Clock::time_point deadline) {
  while (true) {
    pollfd p{fd, events, 0};
    const int ms = RemainingMs(deadline);
    if (ms == 0) return false;
    const int rc = poll(&p, 1, ms);
    if (rc > 0) return true;
    if (rc == 0 || errno != EINTR) return false;
  }
}

std::string Response(int status, std::string_view reason, std::string_view content_type,
                     std::string_view body, bool head) {
  std::string out = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n"
      "Connection: close\r\n\r\n",
      status, reason, content_type, body.size());
  if (!head) out.append(body);
  return out;
}

constexpr std::string_view kText = "text/plain; charset=utf-8";

// Closing a socket with unread input makes the kernel send RST, which can destroy the response
// before the client reads it. Signal our end, then discard what the client still sends, briefly.
void DrainBeforeClose(int conn) {
  shutdown(conn, SHUT_WR);
  const auto deadline = Clock::now() + std::chrono::milliseconds(200);
  char buf[4096];
  size_t drained = 0;
  while (drained < 256 * 1024 && WaitFor(conn, POLLIN, deadline)) {
    const ssize_t n = recv(conn, buf, sizeof(buf), 0);
    if (n == 0) return;
    if (n < 0 && errno != EINTR && errno != EAGAIN) return;
    if (n > 0) drained += static_cast<size_t>(n);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const std::string& listen_addr, std::shared_ptr<prometheus::Collectable> metrics,
    std::function<bool()> healthy) {
  if (!metrics) return absl::InvalidArgumentError("HttpServer::Start: no metrics to serve");
  absl::StatusOr<ListenAddr> addr = ParseListenAddr(listen_addr);
  if (!addr.ok()) return addr.status();

  const auto fail = [&](std::string_view what, int err) {
    return absl::UnavailableError(
        fmt::format("cannot listen on {}: {}: {}", listen_addr, what, std::strerror(err)));
  };
  std::unique_ptr<HttpServer> s(new HttpServer());
  s->metrics_ = std::move(metrics);
  s->healthy_ = std::move(healthy);
  s->listen_fd_ = socket(addr->family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s->listen_fd_ < 0) return fail("socket", errno);
  const int one = 1;
  // Lets a restarted daemon bind while old connections sit in TIME_WAIT; on Linux it does not
  // let two live listeners share a port, so "in use" is still reported.
  setsockopt(s->listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(s->listen_fd_, reinterpret_cast<const sockaddr*>(&addr->storage),  // NOLINT
           addr->len) != 0) {
    return fail("bind", errno);
  }
  if (listen(s->listen_fd_, kListenBacklog) != 0) return fail("listen", errno);
  sockaddr_storage bound{};
  socklen_t bound_len = sizeof(bound);
  if (getsockname(s->listen_fd_, reinterpret_cast<sockaddr*>(&bound), &bound_len) != 0) {  // NOLINT
    return fail("getsockname", errno);
  }
  s->port_ = ntohs(bound.ss_family == AF_INET6
                       ? reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port  // NOLINT
                       : reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);  // NOLINT
  s->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->stop_fd_ < 0) return fail("eventfd", errno);
  try {
    for (size_t i = 0; i < kWorkers; ++i) {
      s->workers_.emplace_back([srv = s.get()] { srv->Work(); });
    }
    s->thread_ = std::thread([srv = s.get()] { srv->Run(); });
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(absl::StrCat("starting the HTTP threads: ", e.what()));
  }
  return s;
}

absl::Status HttpServer::CheckListenAddress(const std::string& listen_addr) {
  return ParseListenAddr(listen_addr).status();
}

HttpServer::~HttpServer() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof(one));
    thread_.join();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& w : workers_) {
    if (w.joinable()) w.join();
  }
  for (const int conn : queue_) close(conn);
  if (listen_fd_ >= 0) close(listen_fd_);
  if (stop_fd_ >= 0) close(stop_fd_);
}

void HttpServer::Run() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    const int rc = poll(fds, 2, -1);
    if (rc < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int conn = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (conn < 0) continue;  // EAGAIN, ECONNABORTED, EMFILE: try again on the next event
    bool queued = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (queue_.size() < kMaxQueued) {
        queue_.push_back(conn);
        queued = true;
      }
    }
    if (queued) {
      cv_.notify_one();
      continue;
    }
    // Every worker busy and the queue full: say so now rather than let the client time out.
    const std::string r = Response(503, "Service Unavailable", kText, "busy\n", false);
    (void)!send(conn, r.data(), r.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    close(conn);
  }
}

void HttpServer::Work() {
  while (true) {
    int conn = -1;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      conn = queue_.front();
      queue_.pop_front();
    }
    Serve(conn);
    close(conn);
  }
}

void HttpServer::Serve(int conn) {
  // Read the request head, bounded in size and time.
  std::string request;
  const auto read_deadline = Clock::now() + kReadTimeout;
  char buf[2048];
  while (request.find("\r\n\r\n") == std::string::npos &&
         request.find("\n\n") == std::string::npos) {
    if (request.size() >= kMaxRequestBytes) {
      const std::string r = Response(431, "Request Header Fields Too Large", kText, "", false);
      (void)!send(conn, r.data(), r.size(), MSG_NOSIGNAL);
      DrainBeforeClose(conn);
      return;
    }
    if (!WaitFor(conn, POLLIN, read_deadline)) return;
    const ssize_t n = recv(conn, buf, sizeof(buf), 0);
    if (n == 0) break;  // the client half-closed: answer what we have
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return;
    }
    request.append(buf, static_cast<size_t>(n));
  }
  bool head = false;
  const std::string response = Respond(request, &head);

  const auto write_deadline = Clock::now() + kWriteTimeout;
  size_t done = 0;
  while (done < response.size()) {
    const ssize_t n = send(conn, response.data() + done, response.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN && WaitFor(conn, POLLOUT, write_deadline)) continue;
    return;
  }
  DrainBeforeClose(conn);
}

std::string HttpServer::Respond(const std::string& request, bool* head) const {
  // Request line: METHOD SP TARGET SP HTTP/x.y
  const size_t eol = request.find_first_of("\r\n");
  const std::string_view line(request.data(), eol == std::string::npos ? request.size() : eol);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.substr(sp2 + 1).rfind("HTTP/", 0) != 0) {
    return Response(400, "Bad Request", kText, "bad request\n", false);
  }
  const std::string_view method = line.substr(0, sp1);
  std::string_view path = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (const size_t q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  *head = method == "HEAD";
  if (method != "GET" && !*head) {
    return Response(405, "Method Not Allowed", kText, "only GET and HEAD\n", false);
  }
  if (path == "/metrics") {
    try {
      const std::string body = prometheus::TextSerializer().Serialize(metrics_->Collect());
      return Response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", body, *head);
    } catch (const std::exception& e) {
      return Response(500, "Internal Server Error", kText,
                      absl::StrCat("collecting metrics failed: ", e.what(), "\n"), *head);
    }
  }
  if (path == "/healthz") {
    bool ok = false;
    try {
      ok = !healthy_ || healthy_();
    } catch (const std::exception&) {
      ok = false;
    }
    return ok ? Response(200, "OK", kText, "ok\n", *head)
              : Response(503, "Service Unavailable", kText, "unhealthy\n", *head);
  }
  if (path == "/") {
    return Response(200, "OK", "text/html; charset=utf-8",
                    "<html><head><title>pgtlsmon</title></head><body><h1>pgtlsmon</h1>"
                    "<p><a href=\"/metrics\">metrics</a> <a href=\"/healthz\">healthz</a></p>"
                    "</body></html>\n",
                    *head);
  }
  return Response(404, "Not Found", kText, "not found\n", *head);
}

}  // namespace pgtlsmon::exporter
