// tests/unit/parser/tls_names_test.cc: names from the IANA registries.
#include "parser/tls_names.h"

#include <gtest/gtest.h>

#include <string>

namespace pgtlsmon::parser {
namespace {

TEST(TlsNamesTest, Versions) {
  EXPECT_EQ(VersionName(0x0002), "SSLv2");
  EXPECT_EQ(VersionName(0x0300), "SSLv3");
  EXPECT_EQ(VersionName(0x0301), "TLSv1");
  EXPECT_EQ(VersionName(0x0302), "TLSv1.1");
  EXPECT_EQ(VersionName(0x0303), "TLSv1.2");
  EXPECT_EQ(VersionName(0x0304), "TLSv1.3");
  EXPECT_EQ(VersionName(0x7f1c), "0x7f1c");  // a TLS 1.3 draft
  EXPECT_EQ(VersionName(0xfefd), "0xfefd");  // DTLS 1.2
  EXPECT_EQ(VersionRank(0x0002), 0);
  EXPECT_EQ(VersionRank(0x0303), kRankTls12);
  EXPECT_EQ(VersionRank(0x0304), 5);
  EXPECT_EQ(VersionRank(0x0a0a), -1);
  EXPECT_LT(VersionRank(0x0302), kRankTls12);
}

TEST(TlsNamesTest, Grease) {
  for (unsigned i = 0; i < 16; ++i) {
    EXPECT_TRUE(IsGrease(static_cast<uint16_t>(0x0a0a + 0x1010 * i)));
  }
  EXPECT_FALSE(IsGrease(0x0a1a));
  EXPECT_FALSE(IsGrease(0x1301));
  EXPECT_FALSE(IsGrease(0x0000));
}

TEST(TlsNamesTest, HexCode) {
  EXPECT_EQ(HexCode(0), "0x0000");
  EXPECT_EQ(HexCode(0xc02f), "0xc02f");
  EXPECT_EQ(HexCode(0xffff), "0xffff");
}

TEST(TlsNamesTest, CipherNamesAcrossTheRegistry) {
  EXPECT_EQ(CipherName(0x0000), "TLS_NULL_WITH_NULL_NULL");
  EXPECT_EQ(CipherName(0x0004), "TLS_RSA_WITH_RC4_128_MD5");
  EXPECT_EQ(CipherName(0x000a), "TLS_RSA_WITH_3DES_EDE_CBC_SHA");
  EXPECT_EQ(CipherName(0x001e), "TLS_KRB5_WITH_DES_CBC_SHA");
  EXPECT_EQ(CipherName(0x002f), "TLS_RSA_WITH_AES_128_CBC_SHA");
  EXPECT_EQ(CipherName(0x0041), "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA");
  EXPECT_EQ(CipherName(0x0096), "TLS_RSA_WITH_SEED_CBC_SHA");
  EXPECT_EQ(CipherName(0x009f), "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384");
  EXPECT_EQ(CipherName(0x00ae), "TLS_PSK_WITH_AES_128_CBC_SHA256");
  EXPECT_EQ(CipherName(0x00c6), "TLS_SM4_GCM_SM3");
  EXPECT_EQ(CipherName(0x00ff), "TLS_EMPTY_RENEGOTIATION_INFO_SCSV");
  EXPECT_EQ(CipherName(0x1301), "TLS_AES_128_GCM_SHA256");
  EXPECT_EQ(CipherName(0x1302), "TLS_AES_256_GCM_SHA384");
  EXPECT_EQ(CipherName(0x1303), "TLS_CHACHA20_POLY1305_SHA256");
  EXPECT_EQ(CipherName(0x1304), "TLS_AES_128_CCM_SHA256");
  EXPECT_EQ(CipherName(0x1305), "TLS_AES_128_CCM_8_SHA256");
  EXPECT_EQ(CipherName(0x1306), "TLS_AEGIS_256_SHA512");
  EXPECT_EQ(CipherName(0x1307), "TLS_AEGIS_128L_SHA256");
  EXPECT_EQ(CipherName(0x5600), "TLS_FALLBACK_SCSV");
  EXPECT_EQ(CipherName(0xc02f), "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
  EXPECT_EQ(CipherName(0xc030), "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384");
  EXPECT_EQ(CipherName(0xc051), "TLS_RSA_WITH_ARIA_256_GCM_SHA384");
  EXPECT_EQ(CipherName(0xc061), "TLS_ECDHE_RSA_WITH_ARIA_256_GCM_SHA384");
  EXPECT_EQ(CipherName(0xc077), "TLS_ECDHE_RSA_WITH_CAMELLIA_256_CBC_SHA384");
  EXPECT_EQ(CipherName(0xc09c), "TLS_RSA_WITH_AES_128_CCM");
  EXPECT_EQ(CipherName(0xc0aa), "TLS_PSK_DHE_WITH_AES_128_CCM_8");
  EXPECT_EQ(CipherName(0xc0b4), "TLS_SHA256_SHA256");
  EXPECT_EQ(CipherName(0xc100), "TLS_GOSTR341112_256_WITH_KUZNYECHIK_CTR_OMAC");
  EXPECT_EQ(CipherName(0xcca8), "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256");
  EXPECT_EQ(CipherName(0xccae), "TLS_RSA_PSK_WITH_CHACHA20_POLY1305_SHA256");
  EXPECT_EQ(CipherName(0xd005), "TLS_ECDHE_PSK_WITH_AES_128_CCM_SHA256");
}

TEST(TlsNamesTest, UnassignedAndReservedCodesHaveNoName) {
  for (int code : {0x001c, 0x001d, 0x0047, 0x005d, 0x0060, 0x0066, 0x0080, 0x00c8, 0x1300, 0x1308,
                   0x0a0a, 0xfafa, 0xcc13, 0xd004, 0xfefe, 0xffe0, 0xffff}) {
    EXPECT_EQ(CipherName(static_cast<uint16_t>(code)), "") << code;
  }
  int named = 0;
  for (uint32_t code = 0; code <= 0xffff; ++code) {
    named += CipherName(static_cast<uint16_t>(code)).empty() ? 0 : 1;
  }
  EXPECT_EQ(named, 353);
}

// Every suite the corpus negotiates (real_tls12_cipher_variety and the TLS 1.3 sessions).
TEST(TlsNamesTest, CorpusSuites) {
  EXPECT_EQ(CipherName(0xc02c), "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384");
  EXPECT_EQ(CipherName(0x009e), "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256");
  EXPECT_EQ(CipherName(0x0039), "TLS_DHE_RSA_WITH_AES_256_CBC_SHA");
  EXPECT_EQ(CipherName(0xccaa), "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256");
}

TEST(TlsNamesTest, WeakCiphers) {
  // NULL encryption
  EXPECT_TRUE(IsWeakCipher(0x0000));
  EXPECT_TRUE(IsWeakCipher(0x0002));  // TLS_RSA_WITH_NULL_SHA
  EXPECT_TRUE(IsWeakCipher(0x003b));  // TLS_RSA_WITH_NULL_SHA256
  EXPECT_TRUE(IsWeakCipher(0xc010));  // TLS_ECDHE_RSA_WITH_NULL_SHA
  EXPECT_TRUE(IsWeakCipher(0x00b0));  // TLS_PSK_WITH_NULL_SHA256
  EXPECT_TRUE(IsWeakCipher(0xc0b4));  // TLS_SHA256_SHA256 (integrity only)
  // anonymous key exchange
  EXPECT_TRUE(IsWeakCipher(0x0034));  // TLS_DH_anon_WITH_AES_128_CBC_SHA
  EXPECT_TRUE(IsWeakCipher(0xc018));  // TLS_ECDH_anon_WITH_AES_128_CBC_SHA
  EXPECT_TRUE(IsWeakCipher(0x00a6));  // TLS_DH_anon_WITH_AES_128_GCM_SHA256
  // EXPORT, RC4, RC2, DES, 3DES, IDEA, MD5
  EXPECT_TRUE(IsWeakCipher(0x0003));  // TLS_RSA_EXPORT_WITH_RC4_40_MD5
  EXPECT_TRUE(IsWeakCipher(0x0005));  // TLS_RSA_WITH_RC4_128_SHA
  EXPECT_TRUE(IsWeakCipher(0xc011));  // TLS_ECDHE_RSA_WITH_RC4_128_SHA
  EXPECT_TRUE(IsWeakCipher(0x0006));  // TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5
  EXPECT_TRUE(IsWeakCipher(0x0009));  // TLS_RSA_WITH_DES_CBC_SHA
  EXPECT_TRUE(IsWeakCipher(0x000a));  // TLS_RSA_WITH_3DES_EDE_CBC_SHA
  EXPECT_TRUE(IsWeakCipher(0xc012));  // TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA
  EXPECT_TRUE(IsWeakCipher(0x0007));  // TLS_RSA_WITH_IDEA_CBC_SHA
  EXPECT_TRUE(IsWeakCipher(0x0022));  // TLS_KRB5_WITH_DES_CBC_MD5
  EXPECT_TRUE(IsWeakCipher(0x0001));  // TLS_RSA_WITH_NULL_MD5
  // Not weak
  for (int strong : {0x1301, 0x1302, 0x1303, 0x1304, 0x002f, 0x0035, 0x009c, 0xc02f, 0xc030, 0xcca8,
                     0xcca9, 0x0041, 0xc051, 0x0096, 0x00ff, 0x5600, 0x00ae}) {
    EXPECT_FALSE(IsWeakCipher(static_cast<uint16_t>(strong))) << strong;
  }
  EXPECT_FALSE(IsWeakCipher(0x0a0a));  // unassigned: nothing to judge
}

TEST(TlsNamesTest, Alerts) {
  // The names tshark-sessions uses (tools/tshark-sessions ALERTS).
  const std::pair<uint8_t, const char*> expected[] = {
      {0, "close_notify"},
      {10, "unexpected_message"},
      {20, "bad_record_mac"},
      {21, "decryption_failed"},
      {22, "record_overflow"},
      {30, "decompression_failure"},
      {40, "handshake_failure"},
      {41, "no_certificate"},
      {42, "bad_certificate"},
      {43, "unsupported_certificate"},
      {44, "certificate_revoked"},
      {45, "certificate_expired"},
      {46, "certificate_unknown"},
      {47, "illegal_parameter"},
      {48, "unknown_ca"},
      {49, "access_denied"},
      {50, "decode_error"},
      {51, "decrypt_error"},
      {60, "export_restriction"},
      {70, "protocol_version"},
      {71, "insufficient_security"},
      {80, "internal_error"},
      {86, "inappropriate_fallback"},
      {90, "user_canceled"},
      {100, "no_renegotiation"},
      {109, "missing_extension"},
      {110, "unsupported_extension"},
      {111, "certificate_unobtainable"},
      {112, "unrecognized_name"},
      {113, "bad_certificate_status_response"},
      {114, "bad_certificate_hash_value"},
      {115, "unknown_psk_identity"},
      {116, "certificate_required"},
      {120, "no_application_protocol"},
  };
  for (const auto& [code, name] : expected) EXPECT_EQ(AlertName(code), name);
  // Registered since, or not in tshark-sessions' table.
  EXPECT_EQ(AlertName(52), "too_many_cids_requested");
  EXPECT_EQ(AlertName(121), "ech_required");
  // Unassigned: the decimal code.
  EXPECT_EQ(AlertName(1), "1");
  EXPECT_EQ(AlertName(99), "99");
  EXPECT_EQ(AlertName(255), "255");
  EXPECT_EQ(AlertLevelName(1), "warning");
  EXPECT_EQ(AlertLevelName(2), "fatal");
  EXPECT_EQ(AlertLevelName(3), "");
  EXPECT_EQ(AlertLevelName(0), "");
}

}  // namespace
}  // namespace pgtlsmon::parser
