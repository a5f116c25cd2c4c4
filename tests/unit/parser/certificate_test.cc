// tests/unit/parser/certificate_test.cc: the server certificate, decoded with OpenSSL.
#include "parser/certificate.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace pgtlsmon::parser {
namespace {

using Bytes = std::vector<uint8_t>;

// DER of a committed PEM fixture (testdata/tls/).
Bytes LoadDer(const std::string& name) {
  const std::string path =
      std::string(PGTLS_SOURCE_DIR) + "/tests/unit/parser/testdata/tls/" + name;
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return {};
  X509* x = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  if (x == nullptr) return {};
  unsigned char* der = nullptr;
  const int len = i2d_X509(x, &der);
  Bytes out;
  if (len > 0) out.assign(der, der + len);
  OPENSSL_free(der);
  X509_free(x);
  return out;
}

void AppendU24(Bytes* b, size_t v) {
  b->push_back(static_cast<uint8_t>((v >> 16) & 0xff));
  b->push_back(static_cast<uint8_t>((v >> 8) & 0xff));
  b->push_back(static_cast<uint8_t>(v & 0xff));
}

// A TLS 1.2 Certificate body: certificate_list length, then each DER with its 3-byte length.
Bytes CertificateMessage(const std::vector<Bytes>& chain) {
  Bytes list;
  for (const auto& der : chain) {
    AppendU24(&list, der.size());
    list.insert(list.end(), der.begin(), der.end());
  }
  Bytes body;
  AppendU24(&body, list.size());
  body.insert(body.end(), list.begin(), list.end());
  return body;
}

// The server certificate of the corpus' TLS 1.2 sessions (real_tls12_client_max.pcap).
TEST(CertificateTest, CorpusRsaCertificate) {
  const Bytes der = LoadDer("corpus_rsa2048_localhost.pem");
  ASSERT_EQ(der.size(), 828u);
  CertificateInfo info;
  ASSERT_EQ(DecodeCertificate(der, &info), ParseResult::kOk);
  EXPECT_EQ(info.subject, "CN=localhost");
  EXPECT_EQ(info.issuer, "CN=localhost");
  EXPECT_EQ(info.not_before, 1795802120);  // 2026-11-27T17:55:20Z
  EXPECT_EQ(info.not_after, 2111162120);   // 2036-11-24T17:55:20Z
  EXPECT_EQ(info.key_type, "RSA");
  EXPECT_EQ(info.key_bits, 2048);
  EXPECT_EQ(info.signature_algorithm, "sha256WithRSAEncryption");
}

// A leaf generated with `openssl req` (Ed25519 key, signed by an EC P-384 CA), with RFC 2253
// escaping in its subject.
TEST(CertificateTest, Ed25519LeafFromEcCa) {
  CertificateInfo info;
  ASSERT_EQ(DecodeCertificate(LoadDer("ed25519_leaf.pem"), &info), ParseResult::kOk);
  EXPECT_EQ(info.subject, "CN=db.example.com,OU=db\\+ops,O=Example\\, Inc.,C=US");
  EXPECT_EQ(info.issuer, "CN=Example CA,O=Example");
  EXPECT_EQ(info.not_before, 1795808420);
  EXPECT_EQ(info.not_after, 1798400420);
  EXPECT_EQ(info.key_type, "Ed25519");
  EXPECT_EQ(info.key_bits, 256);  // EVP_PKEY_get_bits of an Ed25519 key in OpenSSL 3.0
  EXPECT_EQ(info.signature_algorithm, "ecdsa-with-SHA384");

  ASSERT_EQ(DecodeCertificate(LoadDer("ec384_ca.pem"), &info), ParseResult::kOk);
  EXPECT_EQ(info.subject, "CN=Example CA,O=Example");
  EXPECT_EQ(info.key_type, "EC");
  EXPECT_EQ(info.key_bits, 384);
  EXPECT_EQ(info.signature_algorithm, "ecdsa-with-SHA384");
}

TEST(CertificateTest, MessageDecodesTheLeaf) {
  const Bytes leaf = LoadDer("ed25519_leaf.pem");
  const Bytes ca = LoadDer("ec384_ca.pem");
  const Bytes body = CertificateMessage({leaf, ca});
  CertificateInfo info;
  ASSERT_EQ(ParseCertificateMessage(body, &info), ParseResult::kOk);
  EXPECT_EQ(info.subject, "CN=db.example.com,OU=db\\+ops,O=Example\\, Inc.,C=US");
  std::span<const uint8_t> der;
  ASSERT_EQ(LeafCertificateDer(body, &der), ParseResult::kOk);
  EXPECT_TRUE(std::equal(der.begin(), der.end(), leaf.begin(), leaf.end()));
}

TEST(CertificateTest, MessageTruncationSweep) {
  const Bytes body = CertificateMessage({LoadDer("ed25519_leaf.pem"), LoadDer("ec384_ca.pem")});
  for (size_t n = 0; n < body.size(); ++n) {
    CertificateInfo info;
    EXPECT_EQ(ParseCertificateMessage(std::span(body).first(n), &info), ParseResult::kMalformed)
        << n;
  }
}

TEST(CertificateTest, MalformedInput) {
  CertificateInfo info;
  // An empty certificate_list: a server has no leaf to show.
  EXPECT_EQ(ParseCertificateMessage(Bytes{0x00, 0x00, 0x00}, &info), ParseResult::kMalformed);
  // A DER that is not a certificate.
  const Bytes junk = {0x30, 0x03, 0x02, 0x01, 0x05};
  EXPECT_EQ(DecodeCertificate(junk, &info), ParseResult::kMalformed);
  EXPECT_EQ(ParseCertificateMessage(CertificateMessage({junk}), &info), ParseResult::kMalformed);
  EXPECT_EQ(DecodeCertificate({}, &info), ParseResult::kMalformed);
  // Bytes after the certificate's DER.
  Bytes der = LoadDer("corpus_rsa2048_localhost.pem");
  der.push_back(0);
  EXPECT_EQ(DecodeCertificate(der, &info), ParseResult::kMalformed);
  // Every truncation of a DER certificate.
  der.pop_back();
  for (size_t n = 0; n < der.size(); n += 7) {
    EXPECT_EQ(DecodeCertificate(std::span(der).first(n), &info), ParseResult::kMalformed) << n;
  }
}

TEST(CertificateCacheTest, DecodesOnceAndEvictsLeastRecentlyUsed) {
  const Bytes rsa = LoadDer("corpus_rsa2048_localhost.pem");
  const Bytes leaf = LoadDer("ed25519_leaf.pem");
  const Bytes ca = LoadDer("ec384_ca.pem");
  CertificateCache cache(2);
  CertificateInfo info;
  ASSERT_EQ(cache.Decode(rsa, &info), ParseResult::kOk);
  EXPECT_EQ(info.key_type, "RSA");
  ASSERT_EQ(cache.Decode(rsa, &info), ParseResult::kOk);
  EXPECT_EQ(info.key_bits, 2048);
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(cache.misses(), 1u);

  ASSERT_EQ(cache.DecodeMessage(CertificateMessage({leaf, ca}), &info), ParseResult::kOk);
  EXPECT_EQ(info.key_type, "Ed25519");
  EXPECT_EQ(cache.size(), 2u);
  ASSERT_EQ(cache.Decode(rsa, &info), ParseResult::kOk);  // rsa becomes most recent
  EXPECT_EQ(cache.hits(), 2u);
  ASSERT_EQ(cache.Decode(ca, &info), ParseResult::kOk);  // evicts the Ed25519 leaf
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.misses(), 3u);
  ASSERT_EQ(cache.Decode(rsa, &info), ParseResult::kOk);
  EXPECT_EQ(cache.hits(), 3u);
  ASSERT_EQ(cache.Decode(leaf, &info), ParseResult::kOk);  // was evicted: decoded again
  EXPECT_EQ(cache.misses(), 4u);
  EXPECT_EQ(info.subject, "CN=db.example.com,OU=db\\+ops,O=Example\\, Inc.,C=US");
}

TEST(CertificateCacheTest, FailuresAreCachedAndLeaveOutputAlone) {
  CertificateCache cache;
  const Bytes junk = {0x30, 0x03, 0x02, 0x01, 0x05};
  CertificateInfo info;
  info.subject = "unchanged";
  EXPECT_EQ(cache.Decode(junk, &info), ParseResult::kMalformed);
  EXPECT_EQ(cache.Decode(junk, &info), ParseResult::kMalformed);
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(info.subject, "unchanged");
}

}  // namespace
}  // namespace pgtlsmon::parser
