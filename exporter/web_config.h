// exporter/web_config.h: the Prometheus exporter-toolkit web configuration file
// (--web.config.file), as node_exporter and postgres_exporter read it, so users copy theirs.
//
// Format: github.com/prometheus/exporter-toolkit docs/web-configuration.md. Every key it defines
// is accepted; an unknown key, a wrong type or a bad value is an error naming the key (as the
// toolkit's strict YAML decoding does). Files named in it are read at load time (relative to
// the config file's directory, as the toolkit does), so a reload either takes all of a new
// file or none of it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"

namespace pgtlsmon::exporter {

// exporter-toolkit's client_auth_type values (Go's tls.ClientAuthType).
enum class ClientAuth {
  kNoClientCert,
  kRequestClientCert,
  kRequireAnyClientCert,
  kVerifyClientCertIfGiven,
  kRequireAndVerifyClientCert,
};

struct TlsServerConfig {
  std::string cert_pem;       // cert_file's contents, or `cert`
  std::string key_pem;        // key_file's contents, or `key`
  std::string client_ca_pem;  // client_ca_file's contents, or `client_ca`; may be empty
  ClientAuth client_auth = ClientAuth::kNoClientCert;
  std::vector<std::string> client_allowed_sans;  // exact matches of DNS, IP, e-mail or URI SANs
  // The GnuTLS priority string that min_version, max_version, cipher_suites,
  // prefer_server_cipher_suites and curve_preferences map to.
  std::string priorities;
};

struct WebConfig {
  std::string path;  // where it was read from (messages); empty: the built-in default
  // Absent: plain HTTP.
  std::shared_ptr<const TlsServerConfig> tls;
  // http_server_config.headers, added to every response.
  std::vector<std::pair<std::string, std::string>> headers;
  // basic_auth_users: user -> bcrypt hash. Empty: no basic authentication.
  std::map<std::string, std::string> basic_auth_users;
  // rate_limit: one request per interval, bursts of `burst`; interval 0 disables it.
  double rate_limit_interval_s = 0;
  int rate_limit_burst = 0;
};

// Parses the YAML text of a web configuration file. `dir` resolves relative file names. Errors
// are InvalidArgument and name the key ("tls_server_config.min_version: ..."), or the file that
// could not be read.
absl::StatusOr<WebConfig> ParseWebConfig(std::string_view yaml, const std::string& dir);

// Reads and parses `path`.
absl::StatusOr<WebConfig> LoadWebConfigFile(const std::string& path);

// Checks user:password against basic_auth_users, in constant time with respect to the
// password (libxcrypt's bcrypt, CRYPTO_memcmp) and with the same bcrypt cost for unknown users
// (no user enumeration by timing). Successful checks are cached (bcrypt costs ~50 ms at cost
// 10, every scrape carries the credentials), keyed by a SHA-256 of user, hash and password, so
// the cache holds no password. Thread-safe.
class BasicAuthenticator {
 public:
  explicit BasicAuthenticator(std::map<std::string, std::string> users);
  bool enabled() const { return !users_.empty(); }
  bool Check(std::string_view user, std::string_view password);

 private:
  std::map<std::string, std::string> users_;
  std::mutex mu_;
  absl::flat_hash_set<std::string> cache_;  // guarded by mu_; bounded (kMaxCached)
};

// Verifies `password` against one crypt(3) hash (bcrypt "$2a$", "$2b$", "$2y$").
bool VerifyCryptHash(std::string_view password, const std::string& hash);

}  // namespace pgtlsmon::exporter
