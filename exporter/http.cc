#include "exporter/http.h"

// clang-format off
#include <sys/types.h>
#include <sys/socket.h>
#include <cstdarg>
#include <microhttpd.h>
// clang-format on

#include <arpa/inet.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string_view>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "exporter/exposition.h"
#include "exporter/text_util.h"
#include "fmt/format.h"
#include "parser/text.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "prometheus/text_serializer.h"

namespace pgtlsmon::exporter {

using Clock = std::chrono::steady_clock;

struct HttpServer::Instance {
  HttpServer* server = nullptr;
  WebConfig web;
  std::unique_ptr<BasicAuthenticator> auth;
  std::string trust_pem;  // what MHD_OPTION_HTTPS_MEM_TRUST points to
  MHD_Daemon* daemon = nullptr;
  // rate_limit: a token bucket.
  std::mutex rate_mu;
  double tokens = 0;
  Clock::time_point refilled = Clock::now();

  ~Instance() {
    if (daemon != nullptr) MHD_stop_daemon(daemon);
  }
  bool TakeToken() {
    if (web.rate_limit_interval_s <= 0) return true;
    std::lock_guard<std::mutex> lock(rate_mu);
    const auto now = Clock::now();
    tokens = std::min<double>(
        web.rate_limit_burst,
        tokens + std::chrono::duration<double>(now - refilled).count() / web.rate_limit_interval_s);
    refilled = now;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  }
};

namespace {

constexpr int kListenBacklog = 512;
constexpr unsigned kThreads = 2;
constexpr std::string_view kText = "text/plain; charset=utf-8";
int g_head_marker = 0;      // *con_cls once a GET/HEAD request's head is in
int g_answered_marker = 0;  // *con_cls once a request has been answered

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
    if (absl::StrContains(host, ':')) return bad("IPv6 addresses go in brackets");
  }
  const std::optional<unsigned> value = ParseWholeNumber<unsigned>(port);
  if (!value || *value > 65535) return bad("bad port");
  ListenAddr out;
  if (v6) {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(static_cast<uint16_t>(*value));
    if (inet_pton(AF_INET6, host.c_str(), &a.sin6_addr) != 1) return bad("not an IPv6 address");
    std::memcpy(&out.storage, &a, sizeof(a));
    out.len = sizeof(a);
    out.family = AF_INET6;
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(*value));
    if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) {
      return bad("not a numeric IP address");
    }
    std::memcpy(&out.storage, &a, sizeof(a));
    out.len = sizeof(a);
    out.family = AF_INET;
  }
  return out;
}

// libmicrohttpd's own messages (TLS handshake failures, accept errors under descriptor
// exhaustion): at most one a second on stderr, so that an attack cannot flood the log.
void Logger(void* /*cls*/, const char* fmt, va_list ap) {
  static std::atomic<int64_t> last_s{0};
  const int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(Clock::now().time_since_epoch()).count();
  int64_t prev = last_s.load();
  if (now == prev || !last_s.compare_exchange_strong(prev, now)) return;
  char buf[512];
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  std::string_view msg(buf);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\r')) msg.remove_suffix(1);
  std::fprintf(stderr, "pgtlsmon: http: %.*s (further messages this second suppressed)\n",
               static_cast<int>(msg.size()), msg.data());
}

// The client certificate against client_auth_type and client_allowed_sans. Empty when
// accepted, else why not.
std::string CheckClientCert(MHD_Connection* c, const TlsServerConfig& tls) {
  if (tls.client_auth == ClientAuth::kNoClientCert ||
      tls.client_auth == ClientAuth::kRequestClientCert) {
    return "";
  }
  const MHD_ConnectionInfo* ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
  if (ci == nullptr || ci->tls_session == nullptr) return "no TLS session";
  auto* session = static_cast<gnutls_session_t>(ci->tls_session);
  unsigned n = 0;
  const gnutls_datum_t* certs = gnutls_certificate_get_peers(session, &n);
  const bool given = certs != nullptr && n > 0;
  const bool verify = tls.client_auth == ClientAuth::kRequireAndVerifyClientCert ||
                      (tls.client_auth == ClientAuth::kVerifyClientCertIfGiven && given);
  if (!given && tls.client_auth != ClientAuth::kVerifyClientCertIfGiven) {
    return "a client certificate is required";
  }
  if (verify) {
    unsigned status = 0;
    if (gnutls_certificate_verify_peers2(session, &status) != GNUTLS_E_SUCCESS || status != 0) {
      return "the client certificate does not verify against client_ca_file";
    }
  }
  if (tls.client_allowed_sans.empty()) return "";
  gnutls_x509_crt_t crt = nullptr;
  if (gnutls_x509_crt_init(&crt) != GNUTLS_E_SUCCESS) return "out of memory";
  bool match = false;
  if (gnutls_x509_crt_import(crt, certs, GNUTLS_X509_FMT_DER) == GNUTLS_E_SUCCESS) {
    for (unsigned i = 0; !match && i < 64; ++i) {
      char buf[1024];
      size_t size = sizeof(buf);
      unsigned critical = 0;
      const int type = gnutls_x509_crt_get_subject_alt_name(crt, i, buf, &size, &critical);
      if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) break;
      if (type < 0) continue;
      std::string value(buf, size);
      if (type == GNUTLS_SAN_IPADDRESS && (size == 4 || size == 16)) {
        char text[INET6_ADDRSTRLEN] = {};
        inet_ntop(size == 4 ? AF_INET : AF_INET6, buf, text, sizeof(text));
        value = text;
      }
      match = std::find(tls.client_allowed_sans.begin(), tls.client_allowed_sans.end(), value) !=
              tls.client_allowed_sans.end();
    }
  }
  gnutls_x509_crt_deinit(crt);
  return match ? "" : "no subject alternative name of the client certificate is allowed";
}

const char* Header(MHD_Connection* c, const char* name) {
  return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

}  // namespace

// The libmicrohttpd callbacks, friends of HttpServer.
struct HttpServerAccess {
  static void Count(HttpServer* s, unsigned status) {
    for (size_t i = 0; i < std::size(HttpServer::kCodes); ++i) {
      if (static_cast<unsigned>(HttpServer::kCodes[i]) == status) {
        s->counters_.responses[i].fetch_add(1, std::memory_order_relaxed);
      }
    }
  }

  static MHD_Result Send(MHD_Connection* c, HttpServer::Instance* in, unsigned status,
                         std::string_view body, std::string_view content_type,
                         const std::vector<std::pair<const char*, std::string>>& extra = {},
                         bool basic_auth_challenge = false) {
    MHD_Response* r = MHD_create_response_from_buffer(body.size(), const_cast<char*>(body.data()),
                                                      MHD_RESPMEM_MUST_COPY);
    if (r == nullptr) return MHD_NO;
    const std::string ctype(content_type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype.c_str());
    for (const auto& [k, v] : in->web.headers) MHD_add_response_header(r, k.c_str(), v.c_str());
    for (const auto& [k, v] : extra) MHD_add_response_header(r, k, v.c_str());
    Count(in->server, status);
    const MHD_Result rc = basic_auth_challenge
                              ? MHD_queue_basic_auth_fail_response(c, "pgtlsmon", r)
                              : MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
  }

  static MHD_Result Handle(void* cls, MHD_Connection* c, const char* url, const char* method,
                           const char* /*version*/, const char* /*upload_data*/,
                           size_t* upload_data_size, void** con_cls) {
    auto* in = static_cast<HttpServer::Instance*>(cls);
    HttpServer* s = in->server;
    const std::string_view m(method);
    const bool get = m == "GET" || m == "HEAD";
    if (*con_cls == nullptr) {  // the request head is in
      std::lock_guard<std::mutex> lock(s->conn_mu_);
      if (auto it = s->conns_.find(c); it != s->conns_.end()) it->second.in_request = true;
    }
    if (*con_cls == &g_answered_marker || (*con_cls == &g_head_marker && *upload_data_size > 0)) {
      *upload_data_size = 0;  // a body we do not read: discard
      return MHD_YES;
    }
    if (*con_cls == nullptr && get) {
      // Answer on the next call, once libmicrohttpd has the whole request: a response queued
      // from the first call makes it close the connection (no keep-alive, no pipelining).
      *con_cls = &g_head_marker;
      return MHD_YES;
    }
    *con_cls = &g_answered_marker;
    const std::vector<std::pair<const char*, std::string>> close = {{"Connection", "close"}};
    if (in->web.tls) {
      if (std::string why = CheckClientCert(c, *in->web.tls); !why.empty()) {
        return Send(c, in, MHD_HTTP_FORBIDDEN, absl::StrCat(why, "\n"), kText, close);
      }
    }
    if (!get) {  // answered at once, its body unread: the connection closes after it
      return Send(c, in, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n", kText,
                  {{"Allow", "GET, HEAD"}});
    }
    const std::string_view path(url);
    if (path == "/healthz") {  // no authentication: probes, and it tells nothing
      bool ok = false;
      try {
        ok = !s->healthy_ || s->healthy_();
      } catch (const std::exception&) {
        ok = false;
      }
      return ok ? Send(c, in, MHD_HTTP_OK, "ok\n", kText)
                : Send(c, in, MHD_HTTP_SERVICE_UNAVAILABLE, "unhealthy\n", kText);
    }
    if (in->auth->enabled()) {
      char* pass = nullptr;
      char* user = MHD_basic_auth_get_username_password(c, &pass);
      const bool ok = user != nullptr && pass != nullptr && in->auth->Check(user, pass);
      if (pass != nullptr) {
        std::memset(pass, 0, std::strlen(pass));
        MHD_free(pass);
      }
      if (user != nullptr) MHD_free(user);
      if (!ok) return Send(c, in, MHD_HTTP_UNAUTHORIZED, "Unauthorized\n", kText, {}, true);
    }
    if (!in->TakeToken()) {
      return Send(c, in, MHD_HTTP_TOO_MANY_REQUESTS, "Too Many Requests\n", kText);
    }
    if (path == "/metrics") return Metrics(c, in);
    if (path == "/") {
      return Send(c, in, MHD_HTTP_OK,
                  "<html><head><title>pgtlsmon</title></head><body><h1>pgtlsmon</h1>"
                  "<p><a href=\"/metrics\">metrics</a> <a href=\"/healthz\">healthz</a></p>"
                  "</body></html>\n",
                  "text/html; charset=utf-8");
    }
    return Send(c, in, MHD_HTTP_NOT_FOUND, "not found\n", kText);
  }

  static MHD_Result Metrics(MHD_Connection* c, HttpServer::Instance* in) {
    HttpServer* s = in->server;
    std::vector<prometheus::MetricFamily> families;
    try {
      families = s->metrics_->Collect();
    } catch (const std::exception& e) {
      return Send(c, in, MHD_HTTP_INTERNAL_SERVER_ERROR,
                  absl::StrCat("collecting metrics failed: ", e.what(), "\n"), kText);
    }
    AppendOwn(s, &families);
    const char* accept = Header(c, MHD_HTTP_HEADER_ACCEPT);
    const bool om = accept != nullptr && WantsOpenMetrics(accept);
    std::string body =
        om ? SerializeOpenMetrics(families) : prometheus::TextSerializer().Serialize(families);
    std::vector<std::pair<const char*, std::string>> extra = {{"Cache-Control", "no-store"},
                                                              {"Vary", "Accept, Accept-Encoding"}};
    const char* enc = Header(c, MHD_HTTP_HEADER_ACCEPT_ENCODING);
    if (enc != nullptr && AcceptsGzip(enc)) {
      if (auto gz = Gzip(body); gz.ok()) {
        body = std::move(*gz);
        extra.emplace_back("Content-Encoding", "gzip");
      }
    }
    return Send(c, in, MHD_HTTP_OK, body, om ? kOpenMetricsContentType : kTextContentType, extra);
  }

  static void AppendOwn(HttpServer* s, std::vector<prometheus::MetricFamily>* out) {
    using prometheus::MetricType;
    const auto family = [&](const char* name, const char* help, MetricType type) {
      prometheus::MetricFamily f;
      f.name = name;
      f.help = help;
      f.type = type;
      out->push_back(std::move(f));
      return &out->back();
    };
    const auto sample = [](prometheus::MetricFamily* f,
                           std::vector<prometheus::ClientMetric::Label> labels, double v) {
      prometheus::ClientMetric m;
      m.label = std::move(labels);
      (f->type == MetricType::Gauge ? m.gauge.value : m.counter.value) = v;
      f->metric.push_back(std::move(m));
    };
    const HttpServer::Counters& k = s->counters_;
    auto* f = family("pgtlsmon_http_responses_total",
                     "Responses of the /metrics and /healthz endpoint by status code (requests "
                     "libmicrohttpd refused itself, e.g. oversized heads, are not counted).",
                     MetricType::Counter);
    for (size_t i = 0; i < std::size(HttpServer::kCodes); ++i) {
      sample(f, {{"code", std::to_string(HttpServer::kCodes[i])}},
             static_cast<double>(k.responses[i].load(std::memory_order_relaxed)));
    }
    f = family("pgtlsmon_http_slow_requests_closed_total",
               "Connections closed because their request head took longer than 10 s.",
               MetricType::Counter);
    sample(f, {}, static_cast<double>(k.reaped.load()));
    size_t open = 0;
    {
      std::lock_guard<std::mutex> lock(s->conn_mu_);
      open = s->conns_.size();
    }
    f = family("pgtlsmon_http_open_connections", "HTTP connections open now.", MetricType::Gauge);
    sample(f, {}, static_cast<double>(open));
    f = family("pgtlsmon_web_config_reloads_total",
               "Reloads of --web.config.file (SIGHUP) by result.", MetricType::Counter);
    sample(f, {{"result", "success"}}, static_cast<double>(k.reloads_ok.load()));
    sample(f, {{"result", "failure"}}, static_cast<double>(k.reloads_failed.load()));
    f = family("pgtlsmon_web_config_last_reload_successful",
               "1 if the last reload of --web.config.file succeeded (or none was tried), else 0 "
               "(the configuration before it is still in force).",
               MetricType::Gauge);
    sample(f, {}, k.last_reload_ok.load() ? 1 : 0);
  }

  static void OnConnection(void* cls, MHD_Connection* c, void** /*socket_context*/,
                           MHD_ConnectionNotificationCode code) {
    auto* s = static_cast<HttpServer*>(cls);
    std::lock_guard<std::mutex> lock(s->conn_mu_);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
      const MHD_ConnectionInfo* ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
      HttpServer::ConnState st;
      st.fd = ci != nullptr ? ci->connect_fd : -1;
      st.waiting_since = Clock::now();
      s->conns_[c] = st;
    } else {
      // Called before libmicrohttpd closes the descriptor: the reaper, which shuts descriptors
      // down under the same lock, never touches a number that was reused.
      s->conns_.erase(c);
    }
  }

  static void OnCompleted(void* cls, MHD_Connection* c, void** /*con_cls*/,
                          MHD_RequestTerminationCode /*toe*/) {
    auto* s = static_cast<HttpServer*>(cls);
    std::lock_guard<std::mutex> lock(s->conn_mu_);
    if (auto it = s->conns_.find(c); it != s->conns_.end()) {
      it->second.in_request = false;
      it->second.waiting_since = Clock::now();
    }
  }
};

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const std::string& listen_addr, std::shared_ptr<prometheus::Collectable> metrics,
    std::function<bool()> healthy, WebConfig web) {
  if (!metrics) return absl::InvalidArgumentError("HttpServer::Start: no metrics to serve");
  absl::StatusOr<ListenAddr> addr = ParseListenAddr(listen_addr);
  if (!addr.ok()) return addr.status();

  const auto fail = [&](std::string_view what, int err) {
    return absl::UnavailableError(
        fmt::format("cannot listen on {}: {}: {}", listen_addr, what, parser::ErrnoText(err)));
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
  if (addr->family == AF_INET6)
    setsockopt(s->listen_fd_, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  // The sockets API takes every address family as a sockaddr*: the casts below are its.
  // NOLINTBEGIN(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
  if (bind(s->listen_fd_, reinterpret_cast<const sockaddr*>(&addr->storage), addr->len) != 0) {
    return fail("bind", errno);
  }
  if (listen(s->listen_fd_, kListenBacklog) != 0) return fail("listen", errno);
  sockaddr_storage bound{};
  socklen_t bound_len = sizeof(bound);
  if (getsockname(s->listen_fd_, reinterpret_cast<sockaddr*>(&bound), &bound_len) != 0) {
    return fail("getsockname", errno);
  }
  s->port_ =
      ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
  // NOLINTEND(cppcoreguidelines-pro-type-reinterpret-cast)
  auto inst = s->Launch(std::move(web));
  if (!inst.ok()) return inst.status();
  s->current_ = std::move(*inst);
  try {
    s->reaper_ = std::thread([srv = s.get()] { srv->Reap(); });
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(absl::StrCat("starting the reaper thread: ", e.what()));
  }
  return s;
}

absl::Status HttpServer::CheckListenAddress(const std::string& listen_addr) {
  return ParseListenAddr(listen_addr).status();
}

absl::StatusOr<std::unique_ptr<HttpServer::Instance>> HttpServer::Launch(WebConfig web) {
  auto in = std::make_unique<Instance>();
  in->server = this;
  in->web = std::move(web);
  in->auth = std::make_unique<BasicAuthenticator>(in->web.basic_auth_users);
  in->tokens = in->web.rate_limit_burst;
  unsigned flags =
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
  // The callbacks go to MHD_start_daemon as variadic arguments (below): an MHD_OptionItem
  // holds a function only as an intptr_t.
  std::vector<MHD_OptionItem> opts = {
      {MHD_OPTION_CONNECTION_LIMIT, kConnectionLimit, nullptr},
      {MHD_OPTION_CONNECTION_TIMEOUT, kIdleTimeoutS, nullptr},
      {MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<intptr_t>(kConnectionMemory), nullptr},
      {MHD_OPTION_THREAD_POOL_SIZE, kThreads, nullptr},
  };
  if (const auto& tls = in->web.tls) {
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
      return absl::UnimplementedError("this libmicrohttpd was built without TLS");
    }
    flags |= MHD_USE_TLS;
    opts.push_back({MHD_OPTION_HTTPS_MEM_KEY, 0, const_cast<char*>(tls->key_pem.c_str())});
    opts.push_back({MHD_OPTION_HTTPS_MEM_CERT, 0, const_cast<char*>(tls->cert_pem.c_str())});
    opts.push_back({MHD_OPTION_HTTPS_PRIORITIES, 0, const_cast<char*>(tls->priorities.c_str())});
    if (tls->client_auth != ClientAuth::kNoClientCert) {
      // libmicrohttpd asks for a client certificate when it has a trust list; without a client
      // CA (RequestClientCert, RequireAnyClientCert) the server's own certificate stands in:
      // it is only named in the request, nothing is verified against it.
      in->trust_pem = tls->client_ca_pem.empty() ? tls->cert_pem : tls->client_ca_pem;
      opts.push_back({MHD_OPTION_HTTPS_MEM_TRUST, 0, in->trust_pem.data()});
    }
  }
  // Each daemon gets its own descriptor of the shared listening socket (it closes it when it
  // stops), so that a reload can hand the socket over without a moment of refusals.
  const int fd = fcntl(listen_fd_, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "duplicating the listening socket");
  opts.push_back({MHD_OPTION_LISTEN_SOCKET, fd, nullptr});
  opts.push_back({MHD_OPTION_END, 0, nullptr});
  in->daemon = MHD_start_daemon(flags, 0, nullptr, nullptr, &HttpServerAccess::Handle, in.get(),
                                MHD_OPTION_EXTERNAL_LOGGER, &Logger, nullptr,
                                MHD_OPTION_NOTIFY_CONNECTION, &HttpServerAccess::OnConnection, this,
                                MHD_OPTION_NOTIFY_COMPLETED, &HttpServerAccess::OnCompleted, this,
                                MHD_OPTION_ARRAY, opts.data(), MHD_OPTION_END);
  if (in->daemon == nullptr) {
    // libmicrohttpd may or may not have closed it: close it only if it is still our socket.
    struct stat a {};
    struct stat b {};
    if (fstat(fd, &a) == 0 && fstat(listen_fd_, &b) == 0 && a.st_ino == b.st_ino) close(fd);
    return absl::UnavailableError(
        "libmicrohttpd did not start (see its message above: certificate, key or TLS settings)");
  }
  return in;
}

absl::Status HttpServer::Reload(WebConfig web) {
  auto next = Launch(std::move(web));
  if (!next.ok()) {
    CountFailedReload();
    return next.status();
  }
  std::unique_ptr<Instance> old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    old = std::move(current_);
    current_ = std::move(*next);
  }
  // The old daemon stops accepting (the new one has the socket), answers what it has in
  // flight, then stops; keep-alive connections it still holds are closed, and their clients
  // reconnect to the new configuration.
  const MHD_socket quiesced = MHD_quiesce_daemon(old->daemon);
  const auto until = Clock::now() + std::chrono::seconds(1);
  while (Clock::now() < until) {
    bool busy = false;
    {
      std::lock_guard<std::mutex> lock(conn_mu_);
      for (const auto& [c, st] : conns_) busy = busy || st.in_request;
    }
    if (!busy) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  old.reset();
  if (quiesced != MHD_INVALID_SOCKET) close(quiesced);
  counters_.reloads_ok.fetch_add(1);
  counters_.last_reload_ok.store(true);
  return absl::OkStatus();
}

void HttpServer::CountFailedReload() {
  counters_.reloads_failed.fetch_add(1);
  counters_.last_reload_ok.store(false);
}

bool HttpServer::tls() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_ && current_->web.tls != nullptr;
}

void HttpServer::Reap() {
  std::unique_lock<std::mutex> lock(reaper_mu_);
  while (!reaper_cv_.wait_for(lock, std::chrono::milliseconds(500), [this] { return stopping_; })) {
    const auto now = Clock::now();
    std::lock_guard<std::mutex> conn_lock(conn_mu_);
    for (auto& [c, st] : conns_) {
      if (st.in_request || st.reaped || st.fd < 0 || now - st.waiting_since < kRequestHeadTimeout) {
        continue;
      }
      // libmicrohttpd sees the connection end and closes it on its own thread.
      shutdown(st.fd, SHUT_RDWR);
      st.reaped = true;
      counters_.reaped.fetch_add(1);
    }
  }
}

HttpServer::~HttpServer() {
  {
    std::lock_guard<std::mutex> lock(reaper_mu_);
    stopping_ = true;
  }
  reaper_cv_.notify_all();
  if (reaper_.joinable()) reaper_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    current_.reset();
  }
  if (listen_fd_ >= 0) close(listen_fd_);
}

}  // namespace pgtlsmon::exporter
