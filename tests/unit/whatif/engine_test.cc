// The what-if engine against real ClientHellos of an in-process OpenSSL client: one case per
// OpenSSL rule that decides a prediction (../shared/notes/what-if-openssl.md).
#include "whatif/engine.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <string>

#include "tests/testing/openssl_client_hello.h"

namespace pgtlsmon::whatif {
namespace {

using parser::Outcome;
using parser::RawClientHello;
using testing::MakeHello;

Policy P(const std::string& settings) {
  auto s = ParseSettings(settings);
  EXPECT_TRUE(s.ok()) << s.status();
  return s->policy;
}

std::unique_ptr<Engine> Make(std::vector<Policy> ps, int level = 2) {
  EngineOptions o;
  o.security_level = level;
  auto e = Engine::Create(std::move(ps), o);
  EXPECT_TRUE(e.ok()) << e.status();
  return std::move(*e);
}

const KeySpec kRsa;  // rsa2048

RawClientHello Client(int min, int max, const char* ciphers = nullptr, const char* suites = nullptr,
                      const char* groups = nullptr) {
  return MakeHello([&](SSL_CTX*, SSL* s) {
    if (min != 0) SSL_set_min_proto_version(s, min);
    if (max != 0) SSL_set_max_proto_version(s, max);
    if (ciphers != nullptr) {
      ASSERT_EQ(SSL_set_cipher_list(s, ciphers), 1);
    }
    if (suites != nullptr) {
      ASSERT_EQ(SSL_set_ciphersuites(s, suites), 1);
    }
    if (groups != nullptr) {
      ASSERT_EQ(SSL_set1_groups_list(s, groups), 1);
    }
  });
}

TEST(WhatIfEngine, Tls13ClientUnderDefaultsGetsServersFirstSuite) {
  auto e = Make({P("")});
  const auto p = e->Predict(0, Client(0, 0, nullptr, nullptr, "P-256"), kRsa);
  EXPECT_EQ(p.outcome, Outcome::kTls);
  EXPECT_EQ(p.version, 0x0304);
  EXPECT_EQ(p.cipher_suite, 0x1302);  // TLS_AES_256_GCM_SHA384, OpenSSL's first
}

TEST(WhatIfEngine, OldClientFailsTheMinimumVersion) {
  auto e = Make({P("ssl_min_protocol_version = 'TLSv1.2'")});
  const auto p = e->Predict(0, Client(TLS1_VERSION, TLS1_1_VERSION, "DEFAULT:@SECLEVEL=0"), kRsa);
  EXPECT_EQ(p.outcome, Outcome::kTlsFailed);
  EXPECT_EQ(p.reason, "protocol_version");
  EXPECT_EQ(p.version, 0);
}

TEST(WhatIfEngine, MaxVersionCapsTls13Client) {
  auto e = Make({P("ssl_max_protocol_version = 'TLSv1.2'")});
  const auto p = e->Predict(0, Client(0, 0), kRsa);
  EXPECT_EQ(p.outcome, Outcome::kTls);
  EXPECT_EQ(p.version, 0x0303);
  EXPECT_EQ(p.cipher_suite, 0xC030);  // ECDHE-RSA-AES256-GCM-SHA384, server order
}

TEST(WhatIfEngine, SecurityLevelDecidesTls10WithDefaultCiphers) {
  const auto hello = Client(TLS1_VERSION, TLS1_VERSION, "DEFAULT:@SECLEVEL=0");
  auto lvl2 = Make({P("ssl_min_protocol_version = 'TLSv1'")}, 2);
  const auto p2 = lvl2->Predict(0, hello, kRsa);
  EXPECT_EQ(p2.outcome, Outcome::kTlsFailed);
  EXPECT_EQ(p2.reason, "no_signature_algorithm") << p2.detail;
  // @SECLEVEL=0 in ssl_ciphers lowers the level from the cipher list on: TLS 1.0 works.
  auto lvl0 =
      Make({P("ssl_min_protocol_version = 'TLSv1'; ssl_ciphers = 'DEFAULT:@SECLEVEL=0'")}, 2);
  const auto p0 = lvl0->Predict(0, hello, kRsa);
  EXPECT_EQ(p0.outcome, Outcome::kTls) << p0.detail;
  EXPECT_EQ(p0.version, 0x0301);
}

TEST(WhatIfEngine, NoSharedCipher) {
  auto e = Make({P("ssl_ciphers = 'ECDHE+AESGCM'")});
  const auto p = e->Predict(0, Client(0, TLS1_2_VERSION, "AES128-SHA"), kRsa);
  EXPECT_EQ(p.outcome, Outcome::kTlsFailed);
  EXPECT_EQ(p.reason, "no_shared_cipher");
}

TEST(WhatIfEngine, Tls13GroupNotListedFailsWithoutFallback) {
  auto e = Make({P("ssl_ecdh_curve = 'secp384r1'")});
  // The client would do TLS 1.2 with a DHE or RSA suite, but TLS 1.3 is chosen first.
  const auto p = e->Predict(0, Client(0, 0, nullptr, nullptr, "X25519:P-256"), kRsa);
  EXPECT_EQ(p.outcome, Outcome::kTlsFailed);
  EXPECT_EQ(p.reason, "no_shared_group");
}

TEST(WhatIfEngine, Tls13GroupListedWithoutShareIsAHelloRetryRequest) {
  auto e = Make({P("")});  // prime256v1
  // OpenSSL sends a key share for its first group only (X25519).
  const auto p = e->Predict(0, Client(0, 0, nullptr, nullptr, "X25519:P-256"), kRsa);
  EXPECT_EQ(p.outcome, Outcome::kTls);
  EXPECT_EQ(p.version, 0x0304);
}

TEST(WhatIfEngine, Tls12WithoutSharedGroupFallsToDhe) {
  auto e = Make({P("")});
  const auto p =
      e->Predict(0,
                 Client(0, TLS1_2_VERSION, "ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256",
                        nullptr, "X25519"),
                 kRsa);
  EXPECT_EQ(p.outcome, Outcome::kTls);
  EXPECT_EQ(p.version, 0x0303);
  EXPECT_EQ(p.cipher_suite, 0x009E);  // DHE-RSA-AES128-GCM-SHA256: needs PostgreSQL's DH
}

TEST(WhatIfEngine, ServerPreferenceDecidesTheSuite) {
  const auto hello =
      Client(0, TLS1_2_VERSION, "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384");
  auto on = Make({P("ssl_prefer_server_ciphers = on")});
  auto off = Make({P("ssl_prefer_server_ciphers = off")});
  EXPECT_EQ(on->Predict(0, hello, kRsa).cipher_suite, 0xC030);
  EXPECT_EQ(off->Predict(0, hello, kRsa).cipher_suite, 0xC02F);
}

TEST(WhatIfEngine, CertificateKeyTypeRulesSuitesOut) {
  auto e = Make({P("")});
  const auto hello = Client(0, TLS1_2_VERSION, "ECDHE-RSA-AES128-GCM-SHA256");
  EXPECT_EQ(e->Predict(0, hello, kRsa).outcome, Outcome::kTls);
  const auto ec = e->Predict(0, hello, KeySpec{KeySpec::Type::kEc, 256});
  EXPECT_EQ(ec.outcome, Outcome::kTlsFailed);
  EXPECT_EQ(ec.reason, "no_shared_cipher");
}

TEST(WhatIfEngine, Sha1OnlySignatureAlgorithmsFailAtLevel2) {
  auto e = Make({P("")});
  const auto hello = MakeHello([](SSL_CTX*, SSL* s) {
    SSL_set_max_proto_version(s, TLS1_2_VERSION);
    SSL_set_cipher_list(s, "DEFAULT:@SECLEVEL=0");
    SSL_set1_sigalgs_list(s, "RSA+SHA1:ECDSA+SHA1");
  });
  const auto p = e->Predict(0, hello, kRsa);
  EXPECT_EQ(p.outcome, Outcome::kTlsFailed);
  EXPECT_EQ(p.reason, "no_signature_algorithm") << p.detail;
}

TEST(WhatIfEngine, IncompleteHelloIsUnknownNotFailure) {
  auto e = Make({P("")});
  auto hello = Client(0, 0);
  hello.message.resize(hello.message.size() / 2);
  EXPECT_EQ(e->Predict(0, hello, kRsa).outcome, Outcome::kUnknown);
}

TEST(WhatIfEngine, InvalidPoliciesAreRefused) {
  EXPECT_FALSE(Engine::Create({P("ssl_ecdh_curve = 'P-256'")}).ok());
  EXPECT_FALSE(Engine::Create({P("ssl_ecdh_curve = 'X25519'")}).ok());
  const auto bad = Engine::Create({P("ssl_ciphers = 'NOTACIPHER'")});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("ssl_ciphers"), std::string::npos) << bad.status();
  EXPECT_FALSE(Engine::Create({P("ssl_groups = 'nosuchgroup'")}).ok());
  EXPECT_FALSE(Engine::Create({P("ssl_tls13_ciphers = 'TLS_NOPE'")}).ok());
  EngineOptions o;
  o.security_level = 9;
  EXPECT_FALSE(Engine::Create({P("")}, o).ok());
}

TEST(WhatIfEngine, AnnotateCachesPerShapeAndLearnsTheCertificate) {
  auto e = Make({P(""), P("ssl_min_protocol_version = 'TLSv1.3'")});
  parser::SessionRecord r;
  r.server.port = 5432;
  r.client_hello_raw = Client(0, TLS1_2_VERSION, "ECDHE-RSA-AES128-GCM-SHA256");
  parser::SessionRecord r2 = r;
  r2.client_hello_raw = Client(0, TLS1_2_VERSION, "ECDHE-RSA-AES128-GCM-SHA256");  // new random
  ASSERT_NE(r.client_hello_raw->message, r2.client_hello_raw->message);
  e->Annotate(&r);
  e->Annotate(&r2);
  ASSERT_EQ(r.what_if->size(), 2u);
  EXPECT_EQ((*r.what_if)[0].outcome, Outcome::kTls);
  EXPECT_TRUE((*r.what_if)[0].certificate_assumed);
  EXPECT_EQ((*r.what_if)[1].reason, "protocol_version");
  EXPECT_TRUE(r.has_finding(parser::Finding::kFailsWhatIf) == false);
  EXPECT_EQ(e->stats().cache_misses, 2u);
  EXPECT_EQ(e->stats().cache_hits, 2u);
  // An EC certificate seen for the server changes the answer for this RSA-only client.
  parser::SessionRecord r3 = r2;
  r3.what_if.reset();
  r3.certificate = parser::CertificateInfo{};
  r3.certificate->key_type = "EC";
  r3.certificate->key_bits = 256;
  e->Annotate(&r3);
  EXPECT_EQ((*r3.what_if)[0].outcome, Outcome::kTlsFailed);
  EXPECT_FALSE((*r3.what_if)[0].certificate_assumed);
  EXPECT_EQ((*r3.what_if)[0].certificate_key, "ec256");
  EXPECT_TRUE(r3.has_finding(parser::Finding::kFailsWhatIf));
  // No ClientHello: an empty prediction list (JSON null).
  parser::SessionRecord none;
  e->Annotate(&none);
  ASSERT_TRUE(none.what_if.has_value());
  EXPECT_TRUE(none.what_if->empty());
}

}  // namespace
}  // namespace pgtlsmon::whatif
