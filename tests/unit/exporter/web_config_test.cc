#include "exporter/web_config.h"

#include <crypt.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/testing/run_shell.h"

namespace pgtlsmon::exporter {
namespace {

// The error for `yaml`, which must name `key`.
void ExpectError(const std::string& yaml, const std::string& key) {
  auto c = ParseWebConfig(yaml, "/nonexistent");
  ASSERT_FALSE(c.ok()) << yaml;
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(c.status().message()).find(key), std::string::npos)
      << "'" << c.status().message() << "' does not name " << key;
}

TEST(WebConfig, EmptyMeansPlainHttp) {
  for (const char* yaml : {"", "---\n", "{}", "tls_server_config:\n  min_version: TLS13\n"}) {
    auto c = ParseWebConfig(yaml, ".");
    ASSERT_TRUE(c.ok()) << yaml << ": " << c.status();
    EXPECT_EQ(c->tls, nullptr);
    EXPECT_TRUE(c->basic_auth_users.empty());
  }
}

TEST(WebConfig, ErrorsNameTheKey) {
  ExpectError("tls_server_cfg: {}\n", "tls_server_cfg");
  ExpectError("tls_server_config:\n  cert_file: a\n  key_file: b\n  bogus: 1\n",
              "tls_server_config.bogus");
  ExpectError("tls_server_config:\n  key_file: b\n", "cert_file");
  ExpectError("tls_server_config:\n  cert_file: /nonexistent/c.pem\n  key_file: k\n",
              "tls_server_config.cert_file");
  ExpectError("tls_server_config:\n  cert: x\n  cert_file: y\n  key: z\n", "cert_file");
  ExpectError("http_server_config:\n  headers:\n    X-Powered-By: me\n",
              "http_server_config.headers.X-Powered-By");
  ExpectError("http_server_config:\n  headers:\n    X-Frame-Options: allow\n", "X-Frame-Options");
  ExpectError("http_server_config:\n  http2: maybe\n", "http_server_config.http2");
  ExpectError("basic_auth_users:\n  alice: plaintext\n", "basic_auth_users.alice");
  ExpectError("basic_auth_users: [a, b]\n", "basic_auth_users");
  ExpectError("rate_limit:\n  interval: soon\n", "rate_limit.interval");
  ExpectError("rate_limit:\n  burst: -1\n", "rate_limit.burst");
  ExpectError("basic_auth_users: {}\nbasic_auth_users: {}\n", "basic_auth_users");
  ExpectError("tls_server_config: [\n", "YAML");
  ExpectError("- a\n- b\n", "mapping");
}

TEST(WebConfig, RateLimitAndHeaders) {
  auto c = ParseWebConfig(
      "rate_limit:\n  interval: 1m30s\n  burst: 5\nhttp_server_config:\n  http2: false\n"
      "  headers:\n    Strict-Transport-Security: max-age=31536000\n    X-XSS-Protection: ''\n",
      ".");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_DOUBLE_EQ(c->rate_limit_interval_s, 90);
  EXPECT_EQ(c->rate_limit_burst, 5);
  ASSERT_EQ(c->headers.size(), 1u);  // a blank header is unset
  EXPECT_EQ(c->headers[0].first, "Strict-Transport-Security");
}

std::string Hash(const char* password) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  EXPECT_NE(crypt_gensalt_rn("$2b$", 4, nullptr, 0, salt, sizeof(salt)), nullptr);
  crypt_data data{};
  return crypt_rn(password, salt, &data, sizeof(data));
}

TEST(WebConfig, BcryptUsers) {
  const std::string h = Hash("pw");
  EXPECT_TRUE(VerifyCryptHash("pw", h));
  EXPECT_FALSE(VerifyCryptHash("pW", h));
  EXPECT_FALSE(VerifyCryptHash("", h));
  EXPECT_FALSE(VerifyCryptHash("pw", "$2b$04$tooshort"));
  // As htpasswd -B writes it ($2y$).
  std::string y = h;
  y[2] = 'y';
  EXPECT_TRUE(VerifyCryptHash("pw", y));

  auto c = ParseWebConfig("basic_auth_users:\n  alice: '" + h + "'\n", ".");
  ASSERT_TRUE(c.ok()) << c.status();
  BasicAuthenticator auth(c->basic_auth_users);
  EXPECT_TRUE(auth.enabled());
  EXPECT_TRUE(auth.Check("alice", "pw"));
  EXPECT_TRUE(auth.Check("alice", "pw"));  // cached
  EXPECT_FALSE(auth.Check("alice", "px"));
  EXPECT_FALSE(auth.Check("bob", "pw"));  // unknown user, same hash: still refused
  EXPECT_FALSE(auth.Check("", ""));
  EXPECT_TRUE(BasicAuthenticator({}).Check("anyone", "anything"));
}

class TlsFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("pgtls-webcfg-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    const std::string cmd =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
        "-subj /CN=localhost -keyout " +
        (dir_ / "key.pem").string() + " -out " + (dir_ / "cert.pem").string();
    const auto made = pgtlsmon::testing::RunShell(cmd);
    if (made.status != 0) GTEST_SKIP() << "openssl could not make a certificate: " << made.output;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(TlsFiles, FilesRelativeToTheConfigAndPriorities) {
  const std::string path = (dir_ / "web.yml").string();
  std::ofstream(path) << "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n"
                         "  min_version: TLS12\n  max_version: TLS12\n"
                         "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n"
                         "  curve_preferences: [X25519, CurveP256]\n";
  auto c = LoadWebConfigFile(path);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_NE(c->tls, nullptr);
  EXPECT_NE(c->tls->cert_pem.find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_EQ(c->tls->client_auth, ClientAuth::kNoClientCert);
  EXPECT_EQ(c->tls->priorities,
            "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:-CIPHER-ALL:-MAC-ALL:+ECDHE-ECDSA:"
            "+AES-128-GCM:+AEAD:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:%SERVER_PRECEDENCE");

  const auto expect_error = [&](const std::string& extra, const std::string& key) {
    std::ofstream(path) << "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n"
                        << extra;
    auto bad = LoadWebConfigFile(path);
    ASSERT_FALSE(bad.ok()) << extra;
    EXPECT_NE(std::string(bad.status().message()).find(key), std::string::npos)
        << bad.status().message();
    EXPECT_NE(std::string(bad.status().message()).find(path), std::string::npos);
  };
  expect_error("  min_version: TLS09\n", "tls_server_config.min_version");
  expect_error("  min_version: TLS13\n  max_version: TLS12\n", "min_version");
  expect_error("  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n", "cipher_suites");
  expect_error("  curve_preferences: [P256]\n", "curve_preferences");
  expect_error("  client_auth_type: Always\n", "client_auth_type");
  expect_error("  client_auth_type: RequireAndVerifyClientCert\n", "client_ca_file");
  expect_error("  client_ca_file: cert.pem\n", "client_ca_file");
  expect_error("  client_allowed_sans: [a]\n  client_auth_type: RequestClientCert\n",
               "client_allowed_sans");
  // The key does not belong to the certificate.
  std::ofstream(dir_ / "other.pem")
      << "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
  std::ofstream(path) << "tls_server_config:\n  cert_file: cert.pem\n  key_file: other.pem\n";
  EXPECT_FALSE(LoadWebConfigFile(path).ok());

  std::ofstream(path) << "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n"
                         "  client_auth_type: RequireAndVerifyClientCert\n"
                         "  client_ca_file: cert.pem\n  client_allowed_sans: [localhost]\n";
  auto mtls = LoadWebConfigFile(path);
  ASSERT_TRUE(mtls.ok()) << mtls.status();
  EXPECT_EQ(mtls->tls->client_auth, ClientAuth::kRequireAndVerifyClientCert);
  EXPECT_FALSE(mtls->tls->client_ca_pem.empty());
}

}  // namespace
}  // namespace pgtlsmon::exporter
