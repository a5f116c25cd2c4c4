#include "exporter/web_config.h"

#include <crypt.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "exporter/text_util.h"
#include "fmt/format.h"
#include "parser/text.h"
#include "yaml-cpp/yaml.h"

namespace pgtlsmon::exporter {
namespace {

// Concatenation of string-like pieces (absl::StrCat takes absl::string_view, which Debian's
// abseil does not alias to std::string_view).
template <typename... T>
void Append(std::string* out, const T&... pieces) {
  (out->append(std::string_view(pieces)), ...);
}
template <typename... T>
std::string Cat(const T&... pieces) {
  std::string out;
  Append(&out, pieces...);
  return out;
}

constexpr size_t kMaxCached = 1024;  // successful basic-auth checks remembered
constexpr size_t kMaxFileBytes = 1 << 20;

absl::Status Bad(std::string_view key, std::string_view why) {
  return absl::InvalidArgumentError(key.empty() ? std::string(why) : Cat(key, ": ", why));
}

std::string Join(std::string_view parent, const std::string& key) {
  return parent.empty() ? key : Cat(parent, ".", key);
}

// The keys of a mapping, each checked against `allowed` (an unknown or repeated key is an
// error naming it). A null node is an empty mapping.
absl::StatusOr<std::vector<std::pair<std::string, YAML::Node>>> Entries(
    const YAML::Node& node, std::string_view where, const std::set<std::string>* allowed) {
  std::vector<std::pair<std::string, YAML::Node>> out;
  if (!node || node.IsNull()) return out;
  if (!node.IsMap()) return Bad(where.empty() ? "web config" : where, "expected a mapping");
  std::set<std::string> seen;
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (!it->first.IsScalar()) return Bad(where, "keys must be strings");
    std::string key = it->first.Scalar();
    if (allowed != nullptr && allowed->count(key) == 0) {
      return Bad(Join(where, key), "unknown key");
    }
    if (!seen.insert(key).second) return Bad(Join(where, key), "given twice");
    out.emplace_back(std::move(key), it->second);
  }
  return out;
}

absl::StatusOr<std::string> Str(const YAML::Node& n, std::string_view key) {
  if (n.IsNull()) return std::string();
  if (!n.IsScalar()) return Bad(key, "expected a string");
  return n.Scalar();
}

absl::StatusOr<bool> Bool(const YAML::Node& n, std::string_view key) {
  const std::string v = n.IsScalar() ? n.Scalar() : "";
  if (v == "true" || v == "True" || v == "TRUE") return true;
  if (v == "false" || v == "False" || v == "FALSE") return false;
  return Bad(key, "expected true or false");
}

absl::StatusOr<std::vector<std::string>> StrList(const YAML::Node& n, std::string_view key) {
  std::vector<std::string> out;
  if (n.IsNull()) return out;
  if (!n.IsSequence()) return Bad(key, "expected a list of strings");
  for (const auto& e : n) {
    if (!e.IsScalar()) return Bad(key, "expected a list of strings");
    out.push_back(e.Scalar());
  }
  return out;
}

absl::StatusOr<std::string> ReadFile(const std::string& path, std::string_view key) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Bad(key, fmt::format("cannot read {}: {}", path, parser::ErrnoText(errno)));
  std::string data;
  data.resize(kMaxFileBytes + 1);
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  data.resize(static_cast<size_t>(in.gcount()));
  if (data.size() > kMaxFileBytes) return Bad(key, fmt::format("{} is larger than 1 MiB", path));
  return data;
}

// Go duration ("0", "1s", "250ms", "1m30s") in seconds.
absl::StatusOr<double> Duration(const YAML::Node& n, std::string_view key) {
  if (!n.IsScalar()) return Bad(key, "expected a duration such as 1s or 250ms");
  const std::string& s = n.Scalar();
  if (s == "0") return 0.0;
  double total = 0;
  std::string_view rest = s;
  if (rest.empty()) return Bad(key, "expected a duration such as 1s or 250ms");
  while (!rest.empty()) {
    double v = 0;
    const size_t number = FromCharsPrefix(rest, &v);
    if (number == 0 || v < 0) return Bad(key, fmt::format("'{}' is not a duration", s));
    rest.remove_prefix(number);
    size_t letters = 0;
    while (letters < rest.size() && std::isalpha(static_cast<unsigned char>(rest[letters]))) {
      ++letters;
    }
    const std::string_view unit = rest.substr(0, letters);
    rest.remove_prefix(letters);
    static const std::array<std::pair<std::string_view, double>, 7> kUnits = {{
        {"ns", 1e-9},
        {"us", 1e-6},
        {"µs", 1e-6},
        {"ms", 1e-3},
        {"s", 1},
        {"m", 60},
        {"h", 3600},
    }};
    const auto it =
        std::find_if(kUnits.begin(), kUnits.end(), [&](const auto& e) { return e.first == unit; });
    if (it == kUnits.end()) return Bad(key, fmt::format("'{}' is not a duration", s));
    total += v * it->second;
  }
  return total;
}

// Go crypto/tls cipher suite names -> GnuTLS key exchange, cipher, MAC.
struct SuiteParts {
  std::string_view go_name, kx, cipher, mac;  // kx empty: a TLS 1.3 suite (always on, as in Go)
};
constexpr std::array<SuiteParts, 20> kSuites = {{
    {"TLS_RSA_WITH_AES_128_CBC_SHA", "RSA", "AES-128-CBC", "SHA1"},
    {"TLS_RSA_WITH_AES_256_CBC_SHA", "RSA", "AES-256-CBC", "SHA1"},
    {"TLS_RSA_WITH_AES_128_GCM_SHA256", "RSA", "AES-128-GCM", "AEAD"},
    {"TLS_RSA_WITH_AES_256_GCM_SHA384", "RSA", "AES-256-GCM", "AEAD"},
    {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA", "AES-128-CBC", "SHA1"},
    {"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA", "AES-256-CBC", "SHA1"},
    {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA", "AES-128-CBC", "SHA1"},
    {"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA", "AES-256-CBC", "SHA1"},
    {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA", "AES-128-GCM", "AEAD"},
    {"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA", "AES-256-GCM", "AEAD"},
    {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA", "AES-128-GCM", "AEAD"},
    {"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA", "AES-256-GCM", "AEAD"},
    {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA", "CHACHA20-POLY1305", "AEAD"},
    {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA", "CHACHA20-POLY1305", "AEAD"},
    {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "ECDHE-RSA", "CHACHA20-POLY1305", "AEAD"},
    {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "ECDHE-ECDSA", "CHACHA20-POLY1305", "AEAD"},
    {"TLS_AES_128_GCM_SHA256", "", "", ""},
    {"TLS_AES_256_GCM_SHA384", "", "", ""},
    {"TLS_CHACHA20_POLY1305_SHA256", "", "", ""},
    {"TLS_AES_128_CCM_SHA256", "", "", ""},
}};

constexpr std::array<std::pair<std::string_view, std::string_view>, 4> kCurves = {{
    {"CurveP256", "GROUP-SECP256R1"},
    {"CurveP384", "GROUP-SECP384R1"},
    {"CurveP521", "GROUP-SECP521R1"},
    {"X25519", "GROUP-X25519"},
}};

// TLS10..TLS13 -> 0..3.
absl::StatusOr<int> TlsVersion(const YAML::Node& n, std::string_view key) {
  static constexpr std::array<std::string_view, 4> kNames = {"TLS10", "TLS11", "TLS12", "TLS13"};
  const std::string v = n.IsScalar() ? n.Scalar() : "";
  for (size_t i = 0; i < kNames.size(); ++i) {
    if (v == kNames[i]) return static_cast<int>(i);
  }
  return Bad(key, fmt::format("unknown TLS version '{}' (TLS10, TLS11, TLS12 or TLS13)", v));
}

absl::StatusOr<std::shared_ptr<const TlsServerConfig>> ParseTls(const YAML::Node& node,
                                                                const std::string& dir) {
  static const std::set<std::string> kKeys = {"cert",
                                              "key",
                                              "client_ca",
                                              "cert_file",
                                              "key_file",
                                              "client_ca_file",
                                              "client_auth_type",
                                              "client_allowed_sans",
                                              "min_version",
                                              "max_version",
                                              "cipher_suites",
                                              "prefer_server_cipher_suites",
                                              "curve_preferences"};
  const std::string where = "tls_server_config";
  auto entries = Entries(node, where, &kKeys);
  if (!entries.ok()) return entries.status();
  std::map<std::string, YAML::Node> m(entries->begin(), entries->end());
  const auto get = [&](const std::string& k) -> absl::StatusOr<std::string> {
    auto it = m.find(k);
    if (it == m.end()) return std::string();
    return Str(it->second, Join(where, k));
  };
  const auto path_of = [&](const std::string& f) {
    return f.empty() || f.front() == '/' ? f : Cat(dir, "/", f);
  };
  std::array<std::string, 7> v;
  const std::array<std::string, 7> kStrKeys = {
      "cert", "key", "client_ca", "cert_file", "key_file", "client_ca_file", "client_auth_type"};
  for (size_t i = 0; i < v.size(); ++i) {
    auto s = get(kStrKeys[i]);
    if (!s.ok()) return s.status();
    v[i] = *s;
  }
  // Named references, not a structured binding: lambdas below use them (clang < 16).
  const std::string& cert = v[0];
  const std::string& key = v[1];
  const std::string& client_ca = v[2];
  const std::string& cert_file = v[3];
  const std::string& key_file = v[4];
  const std::string& client_ca_file = v[5];
  const std::string& auth_type = v[6];
  // exporter-toolkit: with none of these, the tls_server_config section means plain HTTP.
  if (cert.empty() && key.empty() && client_ca.empty() && cert_file.empty() && key_file.empty() &&
      client_ca_file.empty() && auth_type.empty()) {
    return std::shared_ptr<const TlsServerConfig>();
  }
  auto tls = std::make_shared<TlsServerConfig>();
  const auto pem = [&](const std::string& inline_pem, const std::string& file,
                       const std::string& inline_key, const std::string& file_key, bool required,
                       std::string* out) -> absl::Status {
    if (!inline_pem.empty() && !file.empty()) {
      return Bad(Join(where, file_key),
                 fmt::format("give {} or {}, not both", file_key, inline_key));
    }
    if (!inline_pem.empty()) {
      *out = inline_pem;
      return absl::OkStatus();
    }
    if (file.empty()) {
      return required
                 ? Bad(Join(where, file_key), fmt::format("missing {} or {}", file_key, inline_key))
                 : absl::OkStatus();
    }
    auto data = ReadFile(path_of(file), Join(where, file_key));
    if (!data.ok()) return data.status();
    *out = std::move(*data);
    return absl::OkStatus();
  };
  if (auto st = pem(cert, cert_file, "cert", "cert_file", true, &tls->cert_pem); !st.ok())
    return st;
  if (auto st = pem(key, key_file, "key", "key_file", true, &tls->key_pem); !st.ok()) return st;
  if (auto st =
          pem(client_ca, client_ca_file, "client_ca", "client_ca_file", false, &tls->client_ca_pem);
      !st.ok()) {
    return st;
  }

  static constexpr std::array<std::pair<std::string_view, ClientAuth>, 6> kAuth = {{
      {"", ClientAuth::kNoClientCert},
      {"NoClientCert", ClientAuth::kNoClientCert},
      {"RequestClientCert", ClientAuth::kRequestClientCert},
      {"RequireAnyClientCert", ClientAuth::kRequireAnyClientCert},
      {"VerifyClientCertIfGiven", ClientAuth::kVerifyClientCertIfGiven},
      {"RequireAndVerifyClientCert", ClientAuth::kRequireAndVerifyClientCert},
  }};
  const auto auth =
      std::find_if(kAuth.begin(), kAuth.end(), [&](const auto& e) { return e.first == auth_type; });
  if (auth == kAuth.end()) {
    return Bad(Join(where, "client_auth_type"),
               fmt::format("invalid value '{}' (NoClientCert, RequestClientCert, "
                           "RequireAnyClientCert, VerifyClientCertIfGiven, "
                           "RequireAndVerifyClientCert)",
                           auth_type));
  }
  tls->client_auth = auth->second;
  const bool verifies = tls->client_auth == ClientAuth::kVerifyClientCertIfGiven ||
                        tls->client_auth == ClientAuth::kRequireAndVerifyClientCert;
  if (!tls->client_ca_pem.empty() && tls->client_auth == ClientAuth::kNoClientCert) {
    return Bad(Join(where, "client_ca_file"),
               "a client CA is configured without a client_auth_type that uses it");
  }
  if (verifies && tls->client_ca_pem.empty()) {
    return Bad(Join(where, "client_ca_file"),
               fmt::format("client_auth_type {} needs client_ca_file or client_ca", auth_type));
  }
  if (auto it = m.find("client_allowed_sans"); it != m.end()) {
    auto sans = StrList(it->second, Join(where, "client_allowed_sans"));
    if (!sans.ok()) return sans.status();
    tls->client_allowed_sans = std::move(*sans);
    if (!tls->client_allowed_sans.empty() &&
        tls->client_auth != ClientAuth::kRequireAnyClientCert &&
        tls->client_auth != ClientAuth::kRequireAndVerifyClientCert) {
      return Bad(Join(where, "client_allowed_sans"),
                 "needs client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert");
    }
  }

  // Versions, suites, curves -> one GnuTLS priority string.
  int min_v = 2;
  int max_v = 3;
  if (auto it = m.find("min_version"); it != m.end()) {
    auto x = TlsVersion(it->second, Join(where, "min_version"));
    if (!x.ok()) return x.status();
    min_v = *x;
  }
  if (auto it = m.find("max_version"); it != m.end()) {
    auto x = TlsVersion(it->second, Join(where, "max_version"));
    if (!x.ok()) return x.status();
    max_v = *x;
  }
  if (min_v > max_v) return Bad(Join(where, "min_version"), "newer than max_version");
  bool server_order = true;
  if (auto it = m.find("prefer_server_cipher_suites"); it != m.end()) {
    auto b = Bool(it->second, Join(where, "prefer_server_cipher_suites"));
    if (!b.ok()) return b.status();
    server_order = *b;
  }
  std::string prio = "NORMAL:-VERS-ALL";
  static constexpr std::array<std::string_view, 4> kVers = {"VERS-TLS1.0", "VERS-TLS1.1",
                                                            "VERS-TLS1.2", "VERS-TLS1.3"};
  for (int i = min_v; i <= max_v; ++i) Append(&prio, ":+", kVers[static_cast<size_t>(i)]);
  if (auto it = m.find("cipher_suites"); it != m.end()) {
    auto names = StrList(it->second, Join(where, "cipher_suites"));
    if (!names.ok()) return names.status();
    if (!names->empty()) {
      std::vector<std::string_view> kx;
      std::vector<std::string_view> ciphers;
      std::vector<std::string_view> macs;
      const auto add = [](std::vector<std::string_view>* list, std::string_view s) {
        if (!s.empty() && std::find(list->begin(), list->end(), s) == list->end())
          list->push_back(s);
      };
      for (const auto& n : *names) {
        const auto suite = std::find_if(kSuites.begin(), kSuites.end(),
                                        [&](const SuiteParts& p) { return p.go_name == n; });
        if (suite == kSuites.end()) {
          return Bad(Join(where, "cipher_suites"), fmt::format("unknown cipher suite '{}'", n));
        }
        add(&kx, suite->kx);
        add(&ciphers, suite->cipher);
        add(&macs, suite->mac);
      }
      // As in Go, the list governs TLS 1.2 and older; TLS 1.3's suites stay on.
      if (max_v == 3) {
        for (std::string_view c13 : {"AES-128-GCM", "AES-256-GCM", "CHACHA20-POLY1305"}) {
          add(&ciphers, c13);
        }
        add(&macs, "AEAD");
      }
      Append(&prio, ":-KX-ALL:-CIPHER-ALL:-MAC-ALL");
      for (const auto* parts : {&kx, &ciphers, &macs}) {
        for (std::string_view part : *parts) Append(&prio, ":+", part);
      }
    }
  }
  if (auto it = m.find("curve_preferences"); it != m.end()) {
    auto names = StrList(it->second, Join(where, "curve_preferences"));
    if (!names.ok()) return names.status();
    if (!names->empty()) {
      Append(&prio, ":-GROUP-ALL");
      for (const auto& n : *names) {
        const auto c = std::find_if(kCurves.begin(), kCurves.end(),
                                    [&](const auto& e) { return e.first == n; });
        if (c == kCurves.end()) {
          return Bad(
              Join(where, "curve_preferences"),
              fmt::format("unknown curve '{}' (CurveP256, CurveP384, CurveP521, X25519)", n));
        }
        Append(&prio, ":+", c->second);
      }
    }
  }
  if (server_order) Append(&prio, ":%SERVER_PRECEDENCE");
  tls->priorities = prio;

  // Check now what the HTTP server will load, so that a bad file is refused at load time.
  gnutls_priority_t pc = nullptr;
  const char* err_pos = nullptr;
  if (gnutls_priority_init(&pc, prio.c_str(), &err_pos) != GNUTLS_E_SUCCESS) {
    return Bad(where, fmt::format("GnuTLS rejects the priority string '{}' at '{}'", prio,
                                  err_pos != nullptr ? err_pos : ""));
  }
  gnutls_priority_deinit(pc);
  gnutls_certificate_credentials_t cred = nullptr;
  if (gnutls_certificate_allocate_credentials(&cred) != GNUTLS_E_SUCCESS) {
    return absl::ResourceExhaustedError("gnutls_certificate_allocate_credentials");
  }
  const auto datum = [](const std::string& s) {
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): GnuTLS's datum is unsigned char
    return gnutls_datum_t{reinterpret_cast<unsigned char*>(const_cast<char*>(s.data())),
                          static_cast<unsigned>(s.size())};
  };
  const gnutls_datum_t c = datum(tls->cert_pem);
  const gnutls_datum_t k = datum(tls->key_pem);
  int rc = gnutls_certificate_set_x509_key_mem(cred, &c, &k, GNUTLS_X509_FMT_PEM);
  absl::Status st;
  if (rc < 0) {
    st = Bad(Join(where, cert_file.empty() ? "cert" : "cert_file"),
             fmt::format("certificate and key do not load: {}", gnutls_strerror(rc)));
  } else if (!tls->client_ca_pem.empty()) {
    const gnutls_datum_t ca = datum(tls->client_ca_pem);
    rc = gnutls_certificate_set_x509_trust_mem(cred, &ca, GNUTLS_X509_FMT_PEM);
    if (rc <= 0) {
      st = Bad(Join(where, client_ca_file.empty() ? "client_ca" : "client_ca_file"),
               rc < 0 ? fmt::format("does not load: {}", gnutls_strerror(rc))
                      : std::string("holds no certificate"));
    }
  }
  gnutls_certificate_free_credentials(cred);
  if (!st.ok()) return st;
  return std::shared_ptr<const TlsServerConfig>(std::move(tls));
}

absl::Status ParseHttpServerConfig(const YAML::Node& node, WebConfig* out) {
  static const std::set<std::string> kKeys = {"http2", "headers"};
  static const std::set<std::string> kHeaders = {"Content-Security-Policy", "X-Frame-Options",
                                                 "X-Content-Type-Options", "X-XSS-Protection",
                                                 "Strict-Transport-Security"};
  auto entries = Entries(node, "http_server_config", &kKeys);
  if (!entries.ok()) return entries.status();
  for (const auto& [k, v] : *entries) {
    if (k == "http2") {
      // Accepted for compatibility; this server speaks HTTP/1.1 only.
      if (auto b = Bool(v, "http_server_config.http2"); !b.ok()) return b.status();
      continue;
    }
    auto headers = Entries(v, "http_server_config.headers", &kHeaders);
    if (!headers.ok()) return headers.status();
    for (const auto& [name, value_node] : *headers) {
      const std::string key = Cat("http_server_config.headers.", name);
      auto value = Str(value_node, key);
      if (!value.ok()) return value.status();
      if (value->find_first_of("\r\n") != std::string::npos ||
          value->find('\0') != std::string::npos) {
        return Bad(key, "line breaks are not allowed in a header value");
      }
      const std::string lower = absl::AsciiStrToLower(*value);
      if (name == "X-Frame-Options" && !value->empty() && lower != "deny" &&
          lower != "sameorigin") {
        return Bad(key, "must be deny or sameorigin");
      }
      if (name == "X-Content-Type-Options" && !value->empty() && lower != "nosniff") {
        return Bad(key, "must be nosniff");
      }
      if (!value->empty()) out->headers.emplace_back(name, std::move(*value));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<WebConfig> ParseWebConfig(std::string_view yaml, const std::string& dir) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(Cat("not valid YAML: ", e.what()));
  }
  static const std::set<std::string> kTop = {"tls_server_config", "http_server_config",
                                             "basic_auth_users", "rate_limit"};
  auto entries = Entries(root, "", &kTop);
  if (!entries.ok()) return entries.status();
  WebConfig cfg;
  try {
    for (const auto& [k, v] : *entries) {
      if (k == "tls_server_config") {
        auto tls = ParseTls(v, dir);
        if (!tls.ok()) return tls.status();
        cfg.tls = std::move(*tls);
      } else if (k == "http_server_config") {
        if (auto st = ParseHttpServerConfig(v, &cfg); !st.ok()) return st;
      } else if (k == "basic_auth_users") {
        auto users = Entries(v, k, nullptr);
        if (!users.ok()) return users.status();
        for (const auto& [user, hash_node] : *users) {
          const std::string key = Cat("basic_auth_users.", user);
          auto hash = Str(hash_node, key);
          if (!hash.ok()) return hash.status();
          if (hash->size() != 60 || hash->rfind("$2", 0) != 0) {
            return Bad(key, "expected a bcrypt hash ($2y$10$..., e.g. from htpasswd -nBC 10)");
          }
          cfg.basic_auth_users.emplace(user, std::move(*hash));
        }
      } else {  // rate_limit
        static const std::set<std::string> kRate = {"interval", "burst"};
        auto rate = Entries(v, k, &kRate);
        if (!rate.ok()) return rate.status();
        for (const auto& [rk, rv] : *rate) {
          if (rk == "interval") {
            auto d = Duration(rv, "rate_limit.interval");
            if (!d.ok()) return d.status();
            cfg.rate_limit_interval_s = *d;
          } else {
            const std::optional<int> burst =
                ParseWholeNumber<int>(rv.IsScalar() ? rv.Scalar() : std::string());
            if (!burst || *burst < 0) {
              return Bad("rate_limit.burst", "expected a non-negative integer");
            }
            cfg.rate_limit_burst = *burst;
          }
        }
        if (cfg.rate_limit_interval_s > 0 && cfg.rate_limit_burst < 1) cfg.rate_limit_burst = 1;
      }
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(Cat("not valid YAML: ", e.what()));
  }
  return cfg;
}

absl::StatusOr<WebConfig> LoadWebConfigFile(const std::string& path) {
  auto text = ReadFile(path, "");
  if (!text.ok()) return text.status();
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  auto cfg = ParseWebConfig(*text, slash == 0 ? "/" : dir);
  if (!cfg.ok()) {
    return absl::InvalidArgumentError(Cat(path, ": ", std::string(cfg.status().message())));
  }
  cfg->path = path;
  return cfg;
}

bool VerifyCryptHash(std::string_view password, const std::string& hash) {
  const std::string pw(password);
  crypt_data data{};
  const char* out = crypt_rn(pw.c_str(), hash.c_str(), &data, sizeof(data));
  if (out == nullptr) return false;
  const std::string_view result(out);
  if (result.starts_with('*')) return false;
  return result.size() == hash.size() &&
         CRYPTO_memcmp(result.data(), hash.data(), result.size()) == 0;
}

BasicAuthenticator::BasicAuthenticator(std::map<std::string, std::string> users)
    : users_(std::move(users)) {}

bool BasicAuthenticator::Check(std::string_view user, std::string_view password) {
  if (users_.empty()) return true;
  const auto it = users_.find(std::string(user));
  // Unknown users cost a bcrypt too, against a configured hash (the same cost).
  const std::string& hash = it != users_.end() ? it->second : users_.begin()->second;
  std::string key;
  {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned md_len = 0;
    const std::string material = Cat(std::to_string(user.size()), ":", user, hash, password);
    if (EVP_Digest(material.data(), material.size(), md.data(), &md_len, EVP_sha256(), nullptr) ==
        1) {
      key.assign(parser::AsChars(std::span(md).first(md_len)));
    }
  }
  if (it != users_.end() && !key.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    if (cache_.contains(key)) return true;
  }
  const bool ok = VerifyCryptHash(password, hash) && it != users_.end();
  if (ok && !key.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    if (cache_.size() >= kMaxCached) cache_.clear();
    cache_.insert(std::move(key));
  }
  return ok;
}

}  // namespace pgtlsmon::exporter
