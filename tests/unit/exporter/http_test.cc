#include "exporter/http.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "exporter/metrics.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"

namespace pgtlsmon::exporter {
namespace {

struct Response {
  int status = 0;
  std::string headers;
  std::string body;
};

// A tiny HTTP client: sends `req` as is, reads until the server closes.
Response Raw(int family, const char* ip, int port, const std::string& req) {
  Response r;
  const int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return r;
  int rc = -1;
  if (family == AF_INET) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, ip, &a.sin_addr);
    rc = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));  // NOLINT
  } else {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET6, ip, &a.sin6_addr);
    rc = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));  // NOLINT
  }
  if (rc != 0) {
    close(fd);
    return r;
  }
  if (!req.empty() && write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return r;
  }
  shutdown(fd, SHUT_WR);  // the request is complete
  std::string all;
  char buf[4096];
  ssize_t n = 0;
  while ((n = read(fd, buf, sizeof(buf))) > 0) all.append(buf, static_cast<size_t>(n));
  close(fd);
  const size_t split = all.find("\r\n\r\n");
  if (split == std::string::npos || all.size() < 12) return r;
  r.headers = all.substr(0, split);
  r.body = all.substr(split + 4);
  r.status = std::stoi(all.substr(9, 3));
  return r;
}

Response Get(int family, const char* ip, int port, const std::string& path) {
  return Raw(family, ip, port, "GET " + path + " HTTP/1.0\r\nHost: test\r\n\r\n");
}

bool Ipv6LoopbackAvailable() {
  const int fd = socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;  // NOLINT
  close(fd);
  return ok;
}

TEST(HttpServer, ServesMetricsAndHealth) {
  Metrics m;
  parser::SessionRecord r;
  r.outcome = parser::Outcome::kCancel;
  m.OnRecord(r);
  m.SetStatsProvider([] {
    PipelineStats p;
    p.flows_active = 3;
    return p;
  });
  std::atomic<bool> healthy{true};
  auto server = HttpServer::Start("127.0.0.1:0", m.collectable(), [&] { return healthy.load(); });
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  ASSERT_GT(port, 0);

  Response metrics = Get(AF_INET, "127.0.0.1", port, "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.headers.find("text/plain; version=0.0.4"), std::string::npos)
      << metrics.headers;
  EXPECT_NE(metrics.body.find("pgtlsmon_sessions_total{"), std::string::npos) << metrics.body;
  EXPECT_NE(metrics.body.find("outcome=\"cancel\""), std::string::npos);
  EXPECT_NE(metrics.body.find("pgtlsmon_flows_active 3"), std::string::npos) << metrics.body;

  // Counted after the server started: each scrape collects afresh.
  m.OnRecord(r);
  metrics = Get(AF_INET, "127.0.0.1", port, "/metrics");
  EXPECT_NE(metrics.body.find("version=\"none\"} 2"), std::string::npos) << metrics.body;

  Response health = Get(AF_INET, "127.0.0.1", port, "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "ok\n");
  healthy = false;
  health = Get(AF_INET, "127.0.0.1", port, "/healthz");
  EXPECT_EQ(health.status, 503);
  EXPECT_EQ(health.body, "unhealthy\n");

  EXPECT_EQ(Get(AF_INET, "127.0.0.1", port, "/nope").status, 404);
}

TEST(HttpServer, ServesAPlainRegistry) {
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildCounter().Name("x_total").Help("x").Register(*registry).Add({}).Increment();
  auto server = HttpServer::Start("127.0.0.1:0", registry, nullptr);
  ASSERT_TRUE(server.ok()) << server.status();
  const Response r = Get(AF_INET, "127.0.0.1", (*server)->port(), "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("x_total 1"), std::string::npos) << r.body;
  // No health callback: healthy as long as the server answers.
  EXPECT_EQ(Get(AF_INET, "127.0.0.1", (*server)->port(), "/healthz").status, 200);
}

TEST(HttpServer, PortInUseIsAnErrorNotACrash) {
  Metrics m;
  auto first = HttpServer::Start("127.0.0.1:0", m.collectable(), nullptr);
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string addr = "127.0.0.1:" + std::to_string((*first)->port());
  auto second = HttpServer::Start(addr, m.collectable(), nullptr);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find(addr), std::string::npos) << second.status();
  // The first server is unaffected.
  EXPECT_EQ(Get(AF_INET, "127.0.0.1", (*first)->port(), "/healthz").status, 200);
}

TEST(HttpServer, StopsOnDestruction) {
  Metrics m;
  int port = 0;
  {
    auto server = HttpServer::Start("127.0.0.1:0", m.collectable(), nullptr);
    ASSERT_TRUE(server.ok()) << server.status();
    port = (*server)->port();
  }
  EXPECT_EQ(Get(AF_INET, "127.0.0.1", port, "/healthz").status, 0);  // connection refused
  // And the port can be bound again.
  auto again = HttpServer::Start("127.0.0.1:" + std::to_string(port), m.collectable(), nullptr);
  EXPECT_TRUE(again.ok()) << again.status();
}

TEST(HttpServer, StalledClientsDoNotHoldUpScrapes) {
  Metrics m;
  auto server = HttpServer::Start("127.0.0.1:0", m.collectable(), nullptr);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  // Three clients connect and send nothing (each would hold a one-thread server for the 5 s
  // read timeout); meanwhile 40 concurrent scrapes must all be answered, quickly.
  std::vector<int> stalled;
  for (int i = 0; i < 3; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    ASSERT_EQ(connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)), 0);  // NOLINT
    stalled.push_back(fd);
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::atomic<int> ok{0};
  std::vector<std::thread> scrapers;
  for (int i = 0; i < 40; ++i) {
    scrapers.emplace_back([&] {
      if (Get(AF_INET, "127.0.0.1", port, "/metrics").status == 200) ++ok;
    });
  }
  for (auto& t : scrapers) t.join();
  EXPECT_EQ(ok.load(), 40);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  for (const int fd : stalled) close(fd);
}

TEST(HttpServer, MalformedAddresses) {
  Metrics m;
  for (const char* addr :
       {"", "9433", "127.0.0.1", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:94x3",
        "localhost:9433", "::1:9433", "[::1]9433", "[::1", "[not-ip]:9433"}) {
    auto s = HttpServer::Start(addr, m.collectable(), nullptr);
    ASSERT_FALSE(s.ok()) << addr;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << addr;
  }
  EXPECT_FALSE(HttpServer::Start("127.0.0.1:0", nullptr, nullptr).ok());
}

TEST(HttpServer, OddRequests) {
  Metrics m;
  auto server = HttpServer::Start("127.0.0.1:0", m.collectable(), nullptr);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  EXPECT_EQ(Raw(AF_INET, "127.0.0.1", port, "garbage\r\n\r\n").status, 400);
  EXPECT_EQ(Raw(AF_INET, "127.0.0.1", port, "POST /metrics HTTP/1.1\r\n\r\n").status, 405);
  const Response head = Raw(AF_INET, "127.0.0.1", port, "HEAD /healthz HTTP/1.1\r\n\r\n");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.body, "");
  EXPECT_EQ(Get(AF_INET, "127.0.0.1", port, "/healthz?verbose=1").status, 200);
  EXPECT_EQ(Raw(AF_INET, "127.0.0.1", port, std::string(20000, 'A')).status, 431);
  // A connection without a byte, and a request cut short: answered, and the server goes on.
  EXPECT_EQ(Raw(AF_INET, "127.0.0.1", port, "").status, 400);
  EXPECT_EQ(Raw(AF_INET, "127.0.0.1", port, "GET /healthz HTTP/1.1").status, 200);
  EXPECT_EQ(Get(AF_INET, "127.0.0.1", port, "/").status, 200);
  EXPECT_EQ(Get(AF_INET, "127.0.0.1", port, "/healthz").status, 200);
}

TEST(HttpServer, Ipv6Loopback) {
  if (!Ipv6LoopbackAvailable()) GTEST_SKIP() << "no IPv6 loopback here";
  Metrics m;
  auto server = HttpServer::Start("[::1]:0", m.collectable(), [] { return true; });
  ASSERT_TRUE(server.ok()) << server.status();
  const Response r = Get(AF_INET6, "::1", (*server)->port(), "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok\n");
}

}  // namespace
}  // namespace pgtlsmon::exporter
