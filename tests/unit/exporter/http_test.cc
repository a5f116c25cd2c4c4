#include "exporter/http.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "exporter/metrics.h"
#include "exporter/web_config.h"
#include "parser/text.h"
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
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
    rc = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  } else {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET6, ip, &a.sin6_addr);
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
    rc = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
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
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
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
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
    ASSERT_EQ(connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)), 0);
    stalled.push_back(fd);
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::atomic<int> ok{0};
  std::vector<std::thread> scrapers;
  scrapers.reserve(40);
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

// What libmicrohttpd does with odd input: each request gets an answer or a close, and the
// server goes on serving.
TEST(HttpServer, OddRequests) {
  Metrics m;
  auto server = HttpServer::Start("127.0.0.1:0", m.collectable(), nullptr);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  const auto answered_or_closed = [](int status, std::initializer_list<int> allowed) {
    return status == 0 || std::find(allowed.begin(), allowed.end(), status) != allowed.end();
  };
  EXPECT_TRUE(answered_or_closed(Raw(AF_INET, "127.0.0.1", port, "garbage\r\n\r\n").status, {400}));
  const Response post =
      Raw(AF_INET, "127.0.0.1", port, "POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
  EXPECT_EQ(post.status, 405);
  EXPECT_NE(post.headers.find("Allow: GET, HEAD"), std::string::npos) << post.headers;
  // (Connection: close: libmicrohttpd 0.9.75 may miss a half-close that arrives with a
  // keep-alive request and hold the connection until its 10 s idle timeout.)
  const Response head =
      Raw(AF_INET, "127.0.0.1", port, "HEAD /healthz HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.body, "");
  EXPECT_EQ(Get(AF_INET, "127.0.0.1", port, "/healthz?verbose=1").status, 200);
  EXPECT_EQ(Raw(AF_INET, "127.0.0.1", port, std::string(20000, 'A')).status, 414);
  EXPECT_TRUE(answered_or_closed(
      Raw(AF_INET, "127.0.0.1", port,
          "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(40000, 'b') + "\r\n\r\n")
          .status,
      {413, 414, 431}));
  EXPECT_EQ(Get(AF_INET, "127.0.0.1", port, "/../metrics").status, 404);
  EXPECT_EQ(Get(AF_INET, "127.0.0.1", port, "/metrics/../metrics").status, 404);
  // A connection without a byte, and a request cut short: closed, and the server goes on.
  EXPECT_EQ(Raw(AF_INET, "127.0.0.1", port, "").status, 0);
  EXPECT_EQ(Get(AF_INET, "127.0.0.1", port, "/").status, 200);
  EXPECT_EQ(Get(AF_INET, "127.0.0.1", port, "/healthz").status, 200);
}

// Keep-alive and pipelining: three requests in one write, three answers on one connection.
TEST(HttpServer, PipelinedRequests) {
  Metrics m;
  auto server = HttpServer::Start("127.0.0.1:0", m.collectable(), nullptr);
  ASSERT_TRUE(server.ok()) << server.status();
  std::string req;
  for (int i = 0; i < 3; ++i) req += "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
  req += "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
  const Response r = Raw(AF_INET, "127.0.0.1", (*server)->port(), req);
  EXPECT_EQ(r.status, 200);
  const std::string all = r.headers + "\r\n\r\n" + r.body;
  size_t n = 0;
  for (size_t at = all.find("HTTP/1.1 200"); at != std::string::npos;
       at = all.find("HTTP/1.1 200", at + 1)) {
    ++n;
  }
  EXPECT_EQ(n, 4u) << all;
}

std::string Gunzip(const std::string& in) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) return "";
  std::vector<Bytef> out(size_t{1} << 20);
  zs.next_in = const_cast<Bytef*>(parser::AsBytes(in).data());  // zlib's API is not const
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = inflate(&zs, Z_FINISH);
  inflateEnd(&zs);
  if (rc != Z_STREAM_END) return "";
  return std::string(parser::AsChars(std::span(out).first(zs.total_out)));
}

TEST(HttpServer, GzipAndOpenMetricsWhenAsked) {
  Metrics m;
  parser::SessionRecord r;
  r.outcome = parser::Outcome::kCancel;
  m.OnRecord(r);
  auto server = HttpServer::Start("127.0.0.1:0", m.collectable(), nullptr);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  const std::string get = "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n";
  const Response plain = Raw(AF_INET, "127.0.0.1", port, get + "\r\n");
  ASSERT_EQ(plain.status, 200);
  EXPECT_EQ(plain.headers.find("Content-Encoding"), std::string::npos);

  const Response gz = Raw(AF_INET, "127.0.0.1", port, get + "Accept-Encoding: gzip\r\n\r\n");
  ASSERT_EQ(gz.status, 200);
  EXPECT_NE(gz.headers.find("Content-Encoding: gzip"), std::string::npos) << gz.headers;
  EXPECT_LT(gz.body.size(), plain.body.size() / 2);
  const std::string unzipped = Gunzip(gz.body);
  EXPECT_NE(unzipped.find("pgtlsmon_sessions_total{"), std::string::npos);
  EXPECT_EQ(unzipped.substr(0, 200), plain.body.substr(0, 200));

  // What Prometheus 2.42 sends.
  const Response om = Raw(AF_INET, "127.0.0.1", port,
                          get +
                              "Accept: application/openmetrics-text;version=1.0.0,application/"
                              "openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0."
                              "5,*/*;q=0.1\r\n\r\n");
  ASSERT_EQ(om.status, 200);
  EXPECT_NE(om.headers.find("application/openmetrics-text; version=1.0.0"), std::string::npos);
  EXPECT_NE(om.body.find("# TYPE pgtlsmon_sessions counter\n"), std::string::npos) << om.body;
  EXPECT_NE(om.body.find("\npgtlsmon_sessions_total{"), std::string::npos);
  EXPECT_EQ(om.body.substr(om.body.size() - 6), "# EOF\n");
}

std::string BcryptHash(const std::string& password) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn("$2b$", 4, nullptr, 0, salt, sizeof(salt)) == nullptr) return "";
  crypt_data data{};
  const char* h = crypt_rn(password.c_str(), salt, &data, sizeof(data));
  return h != nullptr ? h : "";
}

std::string BasicHeader(const std::string& user_pass) {
  return "Authorization: Basic " + absl::Base64Escape(user_pass) + "\r\n";
}

TEST(HttpServer, BasicAuthHeadersRateLimitAndReload) {
  Metrics m;
  auto server = HttpServer::Start("127.0.0.1:0", m.collectable(), nullptr);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  ASSERT_EQ(Get(AF_INET, "127.0.0.1", port, "/metrics").status, 200);

  const std::string hash = BcryptHash("s3cret");
  ASSERT_EQ(hash.size(), 60u) << hash;
  auto web = ParseWebConfig("basic_auth_users:\n  alice: '" + hash +
                                "'\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n"
                                "rate_limit:\n  interval: 1h\n  burst: 3\n",
                            ".");
  ASSERT_TRUE(web.ok()) << web.status();
  // The new configuration on the same socket.
  ASSERT_TRUE((*server)->Reload(*web).ok());
  EXPECT_EQ((*server)->port(), port);
  const std::string get = "GET /metrics HTTP/1.0\r\n";
  const Response none = Raw(AF_INET, "127.0.0.1", port, get + "\r\n");
  EXPECT_EQ(none.status, 401);
  EXPECT_NE(none.headers.find("WWW-Authenticate: Basic realm=\"pgtlsmon\""), std::string::npos)
      << none.headers;
  EXPECT_NE(none.headers.find("X-Frame-Options: deny"), std::string::npos) << none.headers;
  EXPECT_EQ(Raw(AF_INET, "127.0.0.1", port, get + BasicHeader("alice:wrong") + "\r\n").status, 401);
  EXPECT_EQ(Raw(AF_INET, "127.0.0.1", port, get + BasicHeader("bob:s3cret") + "\r\n").status, 401);
  // No credentials needed for the health check (liveness probes).
  EXPECT_EQ(Get(AF_INET, "127.0.0.1", port, "/healthz").status, 200);
  // Three tokens in the bucket, one an hour after that.
  for (int i = 0; i < 3; ++i) {
    const Response ok = Raw(AF_INET, "127.0.0.1", port, get + BasicHeader("alice:s3cret") + "\r\n");
    EXPECT_EQ(ok.status, 200) << i;
    if (i == 0) {
      EXPECT_NE(ok.body.find("pgtlsmon_web_config_reloads_total{result=\"success\"} 1"),
                std::string::npos);
      EXPECT_NE(ok.body.find("pgtlsmon_http_responses_total{code=\"401\"} 3"), std::string::npos)
          << ok.body;
    }
  }
  EXPECT_EQ(Raw(AF_INET, "127.0.0.1", port, get + BasicHeader("alice:s3cret") + "\r\n").status,
            429);

  // A failed reload is counted; back to no authentication with a good one.
  (*server)->CountFailedReload();
  auto plain = ParseWebConfig("", ".");
  ASSERT_TRUE(plain.ok());
  const Response before =
      Raw(AF_INET, "127.0.0.1", port, get + BasicHeader("alice:s3cret") + "\r\n");
  EXPECT_EQ(before.status, 429);
  ASSERT_TRUE((*server)->Reload(*plain).ok());
  const Response after = Get(AF_INET, "127.0.0.1", port, "/metrics");
  EXPECT_EQ(after.status, 200);
  EXPECT_NE(after.body.find("pgtlsmon_web_config_reloads_total{result=\"failure\"} 1"),
            std::string::npos);
  EXPECT_NE(after.body.find("pgtlsmon_web_config_last_reload_successful 1"), std::string::npos);
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
