// tests/unit/parser/tls_hello_test.cc: ClientHello / ServerHello parsing and fingerprints.
#include "parser/tls_hello.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "parser/tls_names.h"
#include "parser/tls_record.h"

namespace pgtlsmon::parser {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

using Bytes = std::vector<uint8_t>;

// ---------------------------------------------------------------------------------------------
// Hand-written fixtures, one field per line.

// A TLS 1.3 ClientHello body (after the 4-byte handshake header) with GREASE in every list.
const Bytes kClientHello = {
    0x03, 0x03,                                           // legacy_version TLS 1.2
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,       // random[0..7]
    0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,       // random[8..15]
    0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,       // random[16..23]
    0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20,       // random[24..31]
    0x00,                                                 // legacy_session_id length 0
    0x00, 0x08,                                           // cipher_suites length 8
    0x3a, 0x3a,                                           //   GREASE
    0x13, 0x01,                                           //   TLS_AES_128_GCM_SHA256
    0xc0, 0x2f,                                           //   TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    0x00, 0x2f,                                           //   TLS_RSA_WITH_AES_128_CBC_SHA
    0x01, 0x00,                                           // compression_methods: 1, null
    0x00, 0x5b,                                           // extensions length 91
    0x2a, 0x2a, 0x00, 0x00,                               //   GREASE extension, empty
    0x00, 0x00, 0x00, 0x0e,                               //   server_name, length 14
    0x00, 0x0c,                                           //     server_name_list length 12
    0x00, 0x00, 0x09,                                     //     host_name, length 9
    'l',  'o',  'c',  'a',  'l',  'h',  'o',  's',  't',  //     "localhost"
    0x00, 0x0a, 0x00, 0x08,                               //   supported_groups, length 8
    0x00, 0x06,                                           //     list length 6
    0x4a, 0x4a,                                           //     GREASE
    0x00, 0x1d,                                           //     x25519
    0x00, 0x17,                                           //     secp256r1
    0x00, 0x0b, 0x00, 0x02,                               //   ec_point_formats, length 2
    0x01, 0x00,                                           //     list length 1: uncompressed
    0x00, 0x0d, 0x00, 0x08,                               //   signature_algorithms, length 8
    0x00, 0x06,                                           //     list length 6
    0x04, 0x03,                                           //     ecdsa_secp256r1_sha256
    0x08, 0x04,                                           //     rsa_pss_rsae_sha256
    0x04, 0x01,                                           //     rsa_pkcs1_sha256
    0x00, 0x10, 0x00, 0x0e,                               //   ALPN, length 14
    0x00, 0x0c,                                           //     protocol_name_list length 12
    0x02, 'h',  '2',                                      //     "h2"
    0x08, 'h',  't',  't',  'p',  '/',  '1',  '.',  '1',  //     "http/1.1"
    0x00, 0x2b, 0x00, 0x07,                               //   supported_versions, length 7
    0x06,                                                 //     list length 6
    0x5a, 0x5a,                                           //     GREASE
    0x03, 0x04,                                           //     TLS 1.3
    0x03, 0x03,                                           //     TLS 1.2
    0x00, 0x17, 0x00, 0x00,                               //   extended_master_secret, empty
    0x00, 0x15, 0x00, 0x02,                               //   padding, length 2
    0x00, 0x00,                                           //     zeros
};

// Where the extensions block of kClientHello starts (a prefix ending here is a valid
// extension-less hello).
constexpr size_t kClientHelloExtensionsAt = 2 + 32 + 1 + 2 + 8 + 2;

// A TLS 1.3 ServerHello body that is a HelloRetryRequest.
const Bytes kHelloRetryRequest = {
    0x03, 0x03,                                      // legacy_version TLS 1.2
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11,  // random = SHA-256("HelloRetryRequest")
    0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,  //
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e,  //
    0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,  //
    0x00,                                            // legacy_session_id_echo length 0
    0x13, 0x02,                                      // cipher_suite TLS_AES_256_GCM_SHA384
    0x00,                                            // legacy_compression_method
    0x00, 0x0c,                                      // extensions length 12
    0x00, 0x2b, 0x00, 0x02,                          //   supported_versions, length 2
    0x03, 0x04,                                      //     selected TLS 1.3
    0x00, 0x33, 0x00, 0x02,                          //   key_share, length 2
    0x00, 0x17,                                      //     selected_group secp256r1
};

// A TLS 1.2 ServerHello body with ALPN.
const Bytes kServerHelloAlpn = {
    0x03, 0x03,                                                // server_version TLS 1.2
    0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,            // random[0..7]
    0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,            // random[8..15]
    0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,            // random[16..23]
    0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,            // random[24..31]
    0x04,                                                      // session_id length 4
    0xde, 0xad, 0xbe, 0xef,                                    //   session_id
    0xc0, 0x30,                                                // cipher_suite ECDHE_RSA_AES_256_GCM
    0x00,                                                      // compression_method null
    0x00, 0x16,                                                // extensions length 22
    0xff, 0x01, 0x00, 0x01,                                    //   renegotiation_info, length 1
    0x00,                                                      //     empty renegotiated_connection
    0x00, 0x10, 0x00, 0x0d,                                    //   ALPN, length 13
    0x00, 0x0b,                                                //     protocol_name_list length 11
    0x0a,                                                      //     name length 10
    'p',  'o',  's',  't',  'g',  'r',  'e',  's',  'q', 'l',  //   "postgresql"
};

// An SSLv2-format ClientHello message (RFC 5246 E.2), from msg_type on.
const Bytes kSslv2ClientHello = {
    0x01,                                            // msg_type client_hello
    0x03, 0x01,                                      // version TLS 1.0
    0x00, 0x0c,                                      // cipher_spec_length 12 (4 specs)
    0x00, 0x00,                                      // session_id_length 0
    0x00, 0x10,                                      // challenge_length 16
    0x00, 0x00, 0x2f,                                //   TLS_RSA_WITH_AES_128_CBC_SHA
    0x07, 0x00, 0xc0,                                //   SSL_CK_DES_192_EDE3_CBC_WITH_MD5
    0x00, 0x00, 0x0a,                                //   TLS_RSA_WITH_3DES_EDE_CBC_SHA
    0x00, 0x00, 0xff,                                //   TLS_EMPTY_RENEGOTIATION_INFO_SCSV
    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,  // challenge[0..7]
    0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00,  // challenge[8..15]
};

// ---------------------------------------------------------------------------------------------

TEST(ClientHelloTest, ParsesEveryFieldAndDropsGrease) {
  ClientHelloInfo ch;
  ASSERT_EQ(ParseClientHello(kClientHello, 0x0301, &ch), ParseResult::kOk);
  EXPECT_EQ(ch.record_version, 0x0301);
  EXPECT_EQ(ch.version, 0x0303);
  EXPECT_FALSE(ch.sslv2_format);
  EXPECT_THAT(ch.cipher_suites, ElementsAre(0x1301, 0xc02f, 0x002f));
  EXPECT_THAT(ch.extensions,
              ElementsAre(0x0000, 0x000a, 0x000b, 0x000d, 0x0010, 0x002b, 0x0017, 0x0015));
  EXPECT_THAT(ch.groups, ElementsAre(0x001d, 0x0017));
  EXPECT_THAT(ch.ec_point_formats, ElementsAre(0));
  EXPECT_THAT(ch.signature_algorithms, ElementsAre(0x0403, 0x0804, 0x0401));
  EXPECT_THAT(ch.supported_versions, ElementsAre(0x0304, 0x0303));
  EXPECT_EQ(ch.sni, "localhost");
  EXPECT_THAT(ch.alpn, ElementsAre("h2", "http/1.1"));
  EXPECT_THAT(ch.alpn_raw, ElementsAre("h2", "http/1.1"));
  EXPECT_THAT(ch.sslv2_cipher_specs, IsEmpty());
}

TEST(ClientHelloTest, Ja3AndJa4) {
  ClientHelloInfo ch;
  ASSERT_EQ(ParseClientHello(kClientHello, 0x0301, &ch), ParseResult::kOk);
  EXPECT_EQ(Ja3String(ch), "771,4865-49199-47,0-10-11-13-16-43-23-21,29-23,0");
  EXPECT_EQ(ch.ja3, Md5Hex("771,4865-49199-47,0-10-11-13-16-43-23-21,29-23,0"));
  EXPECT_EQ(Ja4Raw(ch), "t13d0308h2_002f,1301,c02f_000a,000b,000d,0015,0017,002b_0403,0804,0401");
  EXPECT_EQ(ch.ja4, "t13d0308h2_" + Sha256Hex("002f,1301,c02f").substr(0, 12) + "_" +
                        Sha256Hex("000a,000b,000d,0015,0017,002b_0403,0804,0401").substr(0, 12));
}

TEST(ClientHelloTest, GreaseSignatureAlgorithmIsDropped) {
  // Chrome 152+ puts a GREASE value in signature_algorithms; FoxIO's JA4 spec ignores GREASE
  // everywhere (FoxIO-LLC/ja4#305), so it must not reach the list or the JA4_c hash.
  Bytes b = kClientHello;
  const Bytes sigalgs = {0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 0x04, 0x03, 0x08, 0x04};
  const auto at = std::search(b.begin(), b.end(), sigalgs.begin(), sigalgs.end());
  ASSERT_NE(at, b.end());
  at[8] = 0x1a;
  at[9] = 0x1a;
  ClientHelloInfo ch;
  ASSERT_EQ(ParseClientHello(b, 0x0301, &ch), ParseResult::kOk);
  EXPECT_THAT(ch.signature_algorithms, ElementsAre(0x0403, 0x0401));
  EXPECT_EQ(Ja4Raw(ch), "t13d0308h2_002f,1301,c02f_000a,000b,000d,0015,0017,002b_0403,0401");
}

TEST(ClientHelloTest, DigestsAreEvpMd5AndSha256) {
  EXPECT_EQ(Md5Hex(""), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

// FoxIO's own unit test (rust/ja4/src/tls.rs, test_client_stats_into_out).
TEST(Ja4Test, MatchesFoxIoReferenceValue) {
  ClientHelloInfo ch;
  ch.version = 0x0303;
  ch.supported_versions = {0x0304, 0x0303};
  ch.cipher_suites = {0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9,
                      0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035};
  ch.extensions = {0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d,
                   0x0005, 0x0023, 0x0012, 0x002b, 0xff01, 0x000b, 0x000a, 0x0015};
  ch.signature_algorithms = {0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601};
  ch.alpn = {"h2"};
  EXPECT_EQ(Ja4(ch), "t13d1516h2_8daaf6152771_e5627efa2ab1");
  EXPECT_EQ(Ja4Raw(ch),
            "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,"
            "cca9_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,"
            "0804,0401,0503,0805,0501,0806,0601");
}

TEST(Ja4Test, EdgeCases) {
  ClientHelloInfo ch;
  ch.version = 0x0301;
  // No ciphers, no extensions, no ALPN: zero hashes, 'i', "00".
  EXPECT_EQ(Ja4(ch), "t10i000000_000000000000_000000000000");
  // supported_versions only counts when the extension is present.
  ch.supported_versions = {0x0304};
  EXPECT_EQ(Ja4(ch).substr(0, 3), "t10");
  ch.extensions = {0x002b};
  EXPECT_EQ(Ja4(ch).substr(0, 3), "t13");
  // Unknown versions are "00"; SSLv3 "s3".
  ch.supported_versions = {0x7f1c};
  EXPECT_EQ(Ja4(ch).substr(0, 3), "t00");
  ch.extensions.clear();
  ch.version = 0x0300;
  EXPECT_EQ(Ja4(ch).substr(0, 3), "ts3");
  // ALPN: first and last characters; one character has no last; non-ASCII counts as '9'.
  ch.alpn = {"postgresql"};
  EXPECT_EQ(Ja4(ch).substr(8, 2), "pl");
  ch.alpn = {"x"};
  EXPECT_EQ(Ja4(ch).substr(8, 2), "x0");
  ch.alpn = {"\xef\xbf\xbd\xef\xbf\xbd"};
  EXPECT_EQ(Ja4(ch).substr(8, 2), "99");
  ch.alpn = {""};
  EXPECT_EQ(Ja4(ch).substr(8, 2), "00");
  // Counts are capped at 99.
  ch.cipher_suites.assign(150, 0x002f);
  EXPECT_EQ(Ja4(ch).substr(4, 2), "99");
}

TEST(ClientHelloTest, WithoutExtensions) {
  const Bytes body = {
      0x03, 0x00,                                      // client_version SSLv3
      0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // random[0..7]
      0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // random[8..15]
      0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // random[16..23]
      0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // random[24..31]
      0x00,                                            // session_id length 0
      0x00, 0x04,                                      // cipher_suites length 4
      0x00, 0x0a,                                      //   TLS_RSA_WITH_3DES_EDE_CBC_SHA
      0x00, 0xff,                                      //   TLS_EMPTY_RENEGOTIATION_INFO_SCSV
      0x01, 0x00,                                      // compression_methods: null
  };
  ClientHelloInfo ch;
  ASSERT_EQ(ParseClientHello(body, 0x0300, &ch), ParseResult::kOk);
  EXPECT_EQ(ch.version, 0x0300);
  EXPECT_THAT(ch.extensions, IsEmpty());
  EXPECT_THAT(ch.supported_versions, IsEmpty());
  EXPECT_FALSE(ch.sni.has_value());
  EXPECT_THAT(ch.alpn, IsEmpty());
  EXPECT_EQ(Ja3String(ch), "768,10-255,,,");
  EXPECT_EQ(Ja4Raw(ch), "ts3i020000_000a,00ff_");
  for (size_t n = 0; n < body.size(); ++n) {
    ClientHelloInfo partial;
    EXPECT_EQ(ParseClientHello(std::span(body).first(n), 0x0300, &partial), ParseResult::kMalformed)
        << n;
  }
}

TEST(ClientHelloTest, TruncationSweep) {
  for (size_t n = 0; n < kClientHello.size(); ++n) {
    ClientHelloInfo ch;
    const ParseResult r = ParseClientHello(std::span(kClientHello).first(n), 0x0301, &ch);
    if (n == kClientHelloExtensionsAt) {
      // Cut exactly where the extensions begin: a well-formed, extension-less hello. It must be
      // reported as exactly that, not as the full hello.
      ASSERT_EQ(r, ParseResult::kOk);
      EXPECT_THAT(ch.extensions, IsEmpty());
      EXPECT_FALSE(ch.sni.has_value());
    } else {
      EXPECT_EQ(r, ParseResult::kMalformed) << n;
    }
  }
}

TEST(ClientHelloTest, MalformedLengths) {
  // cipher_suites length odd.
  Bytes b = kClientHello;
  b[35] = 0x00;
  b[36] = 0x07;
  ClientHelloInfo ch;
  EXPECT_EQ(ParseClientHello(b, 0x0301, &ch), ParseResult::kMalformed);
  // cipher_suites length 0x7ff0 overrunning the message (crafted_malformed_tls_records #4).
  b = kClientHello;
  b[35] = 0x7f;
  b[36] = 0xf0;
  EXPECT_EQ(ParseClientHello(b, 0x0301, &ch), ParseResult::kMalformed);
  // extensions length one too long.
  b = kClientHello;
  b[kClientHelloExtensionsAt + 1] = 0x5c;
  EXPECT_EQ(ParseClientHello(b, 0x0301, &ch), ParseResult::kMalformed);
  // SNI host_name length overrunning its list (crafted_malformed_tls_records #5).
  b = kClientHello;
  b[kClientHelloExtensionsAt + 2 + 4 + 4 + 2 + 2] = 0x40;
  EXPECT_EQ(ParseClientHello(b, 0x0301, &ch), ParseResult::kMalformed);
  // Trailing bytes after the extensions.
  b = kClientHello;
  b.push_back(0);
  EXPECT_EQ(ParseClientHello(b, 0x0301, &ch), ParseResult::kMalformed);
  // A session id longer than 32 bytes.
  b = kClientHello;
  b[34] = 33;
  EXPECT_EQ(ParseClientHello(b, 0x0301, &ch), ParseResult::kMalformed);
}

TEST(ClientHelloTest, InvalidUtf8BecomesReplacementCharacters) {
  Bytes b = kClientHello;
  // "localhost" -> "lo\xc3\x28lh\xffst": C3 is not followed by a continuation byte, FF never
  // starts a sequence; each invalid byte becomes U+FFFD.
  const size_t name_at = kClientHelloExtensionsAt + 2 + 4 + 4 + 2 + 3;
  ASSERT_EQ(b[name_at], 'l');
  b[name_at + 2] = 0xc3;
  b[name_at + 3] = 0x28;
  b[name_at + 6] = 0xff;
  ClientHelloInfo ch;
  ASSERT_EQ(ParseClientHello(b, 0x0301, &ch), ParseResult::kOk);
  EXPECT_EQ(ch.sni, "lo\xef\xbf\xbd(lh\xef\xbf\xbdst");

  // A valid two-byte and four-byte sequence survive; an overlong encoding does not.
  b = kClientHello;
  b[name_at + 0] = 0xc3;  // U+00E9
  b[name_at + 1] = 0xa9;
  b[name_at + 2] = 0xf0;  // U+1F600
  b[name_at + 3] = 0x9f;
  b[name_at + 4] = 0x98;
  b[name_at + 5] = 0x80;
  b[name_at + 6] = 0xc0;  // overlong '/'
  b[name_at + 7] = 0xaf;
  ASSERT_EQ(ParseClientHello(b, 0x0301, &ch), ParseResult::kOk);
  EXPECT_EQ(ch.sni, "\xc3\xa9\xf0\x9f\x98\x80\xef\xbf\xbd\xef\xbf\xbdt");
}

TEST(Sslv2ClientHelloTest, Parses) {
  ClientHelloInfo ch;
  ASSERT_EQ(ParseSslv2ClientHello(kSslv2ClientHello, &ch), ParseResult::kOk);
  EXPECT_TRUE(ch.sslv2_format);
  EXPECT_EQ(ch.record_version, 0x0002);
  EXPECT_EQ(ch.version, 0x0301);
  EXPECT_THAT(ch.sslv2_cipher_specs, ElementsAre(0x00002fu, 0x0700c0u, 0x00000au, 0x0000ffu));
  EXPECT_THAT(ch.cipher_suites, ElementsAre(0x002f, 0x000a, 0x00ff));
  EXPECT_THAT(ch.extensions, IsEmpty());
  EXPECT_FALSE(ch.sni.has_value());
  EXPECT_EQ(ch.ja3, "");  // Wireshark has no JA3 for this format
  EXPECT_EQ(ch.ja4, "t10i030000_" + Sha256Hex("000a,002f,00ff").substr(0, 12) + "_000000000000");
}

TEST(Sslv2ClientHelloTest, TruncationSweepAndBadFields) {
  for (size_t n = 0; n < kSslv2ClientHello.size(); ++n) {
    ClientHelloInfo ch;
    EXPECT_EQ(ParseSslv2ClientHello(std::span(kSslv2ClientHello).first(n), &ch),
              ParseResult::kMalformed)
        << n;
  }
  ClientHelloInfo ch;
  Bytes b = kSslv2ClientHello;
  b[0] = 4;  // not a client_hello
  EXPECT_EQ(ParseSslv2ClientHello(b, &ch), ParseResult::kMalformed);
  b = kSslv2ClientHello;
  b[4] = 0x0b;  // cipher_spec_length not a multiple of 3
  EXPECT_EQ(ParseSslv2ClientHello(b, &ch), ParseResult::kMalformed);
  b = kSslv2ClientHello;
  b[8] = 0x08;  // challenge shorter than 16 bytes
  EXPECT_EQ(ParseSslv2ClientHello(b, &ch), ParseResult::kMalformed);
  b = kSslv2ClientHello;
  b.push_back(0);  // trailing byte
  EXPECT_EQ(ParseSslv2ClientHello(b, &ch), ParseResult::kMalformed);
}

TEST(ServerHelloTest, HelloRetryRequest) {
  ServerHelloInfo sh;
  ASSERT_EQ(ParseServerHello(kHelloRetryRequest, &sh), ParseResult::kOk);
  EXPECT_TRUE(sh.hello_retry_request);
  EXPECT_EQ(sh.version, 0x0303);
  EXPECT_EQ(sh.selected_version, 0x0304);
  EXPECT_EQ(sh.cipher_suite, 0x1302);
  EXPECT_THAT(sh.extensions, ElementsAre(0x002b, 0x0033));
  EXPECT_FALSE(sh.alpn.has_value());
  EXPECT_EQ(Ja3sString(sh), "771,4866,43-51");
  // OpenSSL's HelloRetryRequest in the corpus (real_tls13_default) has this JA3S.
  EXPECT_EQ(sh.ja3s, "15af977ce25de452b96affa2addb1036");
}

TEST(ServerHelloTest, Tls12WithAlpn) {
  ServerHelloInfo sh;
  ASSERT_EQ(ParseServerHello(kServerHelloAlpn, &sh), ParseResult::kOk);
  EXPECT_FALSE(sh.hello_retry_request);
  EXPECT_EQ(sh.version, 0x0303);
  EXPECT_FALSE(sh.selected_version.has_value());
  EXPECT_EQ(sh.cipher_suite, 0xc030);
  EXPECT_EQ(sh.alpn, "postgresql");
  EXPECT_EQ(Ja3sString(sh), "771,49200,65281-16");
  EXPECT_EQ(sh.ja3s, Md5Hex("771,49200,65281-16"));
}

TEST(ServerHelloTest, TruncationSweep) {
  for (const Bytes* f : {&kHelloRetryRequest, &kServerHelloAlpn}) {
    const size_t ext_at = 2 + 32 + 1 + (*f)[34] + 2 + 1;
    for (size_t n = 0; n < f->size(); ++n) {
      ServerHelloInfo sh;
      const ParseResult r = ParseServerHello(std::span(*f).first(n), &sh);
      if (n == ext_at) {
        ASSERT_EQ(r, ParseResult::kOk);  // a well-formed extension-less ServerHello
        EXPECT_THAT(sh.extensions, IsEmpty());
        EXPECT_FALSE(sh.selected_version.has_value());
      } else {
        EXPECT_EQ(r, ParseResult::kMalformed) << n;
      }
    }
  }
}

TEST(ServerHelloTest, MalformedExtensions) {
  ServerHelloInfo sh;
  Bytes b = kHelloRetryRequest;
  b[2 + 32 + 1 + 2 + 1 + 2 + 3] = 0x03;  // supported_versions length 3
  EXPECT_EQ(ParseServerHello(b, &sh), ParseResult::kMalformed);
  b = kServerHelloAlpn;
  b.back() = 'l';
  b[b.size() - 11] = 0x09;  // ALPN name length 9 inside an 11-byte list: two names, or garbage
  EXPECT_EQ(ParseServerHello(b, &sh), ParseResult::kMalformed);
}

// ---------------------------------------------------------------------------------------------
// Real hellos from the corpus (testdata/tls/corpus_hellos.txt, made by extract_hellos.py from
// ../shared/corpus): JA3 and JA3S against tshark's truth records, JA4 against FoxIO's values.

struct CorpusLine {
  std::string capture;
  std::string client_port;
  char dir = 'c';
  std::string fp;   // ja3 or ja3s, "-" if none
  std::string ja4;  // "-" if none
  Bytes records;
};

std::vector<CorpusLine> LoadCorpus() {
  std::ifstream in(std::string(PGTLS_SOURCE_DIR) +
                   "/tests/unit/parser/testdata/tls/corpus_hellos.txt");
  std::vector<CorpusLine> out;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    CorpusLine c;
    std::string dir;
    std::string hex;
    ss >> c.capture >> c.client_port >> dir >> c.fp >> c.ja4 >> hex;
    c.dir = dir.empty() ? '?' : dir[0];
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
      c.records.push_back(static_cast<uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
    }
    out.push_back(std::move(c));
  }
  return out;
}

class FirstHelloSink : public TlsRecordSink {
 public:
  explicit FirstHelloSink(uint8_t want) : want_(want) {}
  void OnHandshakeMessage(uint8_t type, std::span<const uint8_t> body, uint16_t version) override {
    if (type == want_ && !found) {
      found = true;
      message.assign(body.begin(), body.end());
      record_version = version;
    }
  }
  void OnSslv2ClientHello(std::span<const uint8_t> m) override {
    sslv2 = true;
    found = true;
    message.assign(m.begin(), m.end());
  }
  void OnAlert(uint8_t, uint8_t) override {}
  void OnChangeCipherSpec() override {}
  void OnApplicationData() override {}

  bool found = false;
  bool sslv2 = false;
  Bytes message;
  uint16_t record_version = 0;

 private:
  uint8_t want_;
};

TEST(CorpusHelloTest, FingerprintsMatchReferences) {
  const auto corpus = LoadCorpus();
  ASSERT_GE(corpus.size(), 100u);
  int ja3_ok = 0;
  int ja3_total = 0;
  int ja3s_ok = 0;
  int ja3s_total = 0;
  int ja4_ok = 0;
  int ja4_total = 0;
  for (const auto& c : corpus) {
    SCOPED_TRACE(c.capture + ":" + c.client_port + " " + c.dir);
    FirstHelloSink sink(c.dir == 'c' ? kHandshakeClientHello : kHandshakeServerHello);
    TlsRecordParser parser;
    ParseStats stats;
    EXPECT_EQ(parser.Feed(c.records, sink, &stats), c.records.size());
    EXPECT_FALSE(parser.failed());
    EXPECT_EQ(stats.Total(), 0u);
    ASSERT_TRUE(sink.found);
    if (c.dir == 'c') {
      ClientHelloInfo ch;
      const ParseResult r = sink.sslv2 ? ParseSslv2ClientHello(sink.message, &ch)
                                       : ParseClientHello(sink.message, sink.record_version, &ch);
      ASSERT_EQ(r, ParseResult::kOk);
      if (c.fp != "-") {
        ++ja3_total;
        ja3_ok += ch.ja3 == c.fp ? 1 : 0;
        EXPECT_EQ(ch.ja3, c.fp) << Ja3String(ch);
      }
      if (c.ja4 != "-") {
        ++ja4_total;
        ja4_ok += ch.ja4 == c.ja4 ? 1 : 0;
        EXPECT_EQ(ch.ja4, c.ja4) << Ja4Raw(ch);
      }
    } else {
      ServerHelloInfo sh;
      ASSERT_EQ(ParseServerHello(sink.message, &sh), ParseResult::kOk);
      if (c.fp != "-") {
        ++ja3s_total;
        ja3s_ok += sh.ja3s == c.fp ? 1 : 0;
        EXPECT_EQ(sh.ja3s, c.fp) << Ja3sString(sh);
      }
    }
  }
  std::printf("JA3 %d/%d, JA3S %d/%d, JA4 %d/%d agree with the references\n", ja3_ok, ja3_total,
              ja3s_ok, ja3s_total, ja4_ok, ja4_total);
  EXPECT_GT(ja4_total, 5);
}

// Field checks on a few corpus hellos whose truth records say more than the fingerprints.
const CorpusLine* Find(const std::vector<CorpusLine>& corpus, const std::string& capture,
                       const std::string& port, char dir) {
  for (const auto& c : corpus) {
    if (c.capture == capture && c.client_port == port && c.dir == dir) return &c;
  }
  return nullptr;
}

ClientHelloInfo CorpusClientHello(const CorpusLine& c) {
  FirstHelloSink sink(kHandshakeClientHello);
  TlsRecordParser parser;
  parser.Feed(c.records, sink, nullptr);
  ClientHelloInfo ch;
  EXPECT_EQ(ParseClientHello(sink.message, sink.record_version, &ch), ParseResult::kOk);
  return ch;
}

TEST(CorpusHelloTest, MultiRecordHelloWithLongSniAndAlpnList) {
  const auto corpus = LoadCorpus();
  const CorpusLine* c = Find(corpus, "real_clienthello_multi_record", "43284", 'c');
  ASSERT_NE(c, nullptr);
  const ClientHelloInfo ch = CorpusClientHello(*c);
  EXPECT_EQ(VersionName(ch.record_version), "TLSv1");
  ASSERT_TRUE(ch.sni.has_value());
  EXPECT_EQ(ch.sni->size(), 195u);  // 3 x 60 + 2 dots + ".example.test"
  EXPECT_EQ(ch.sni->substr(ch.sni->size() - 13), ".example.test");
  ASSERT_EQ(ch.alpn.size(), 32u);
  EXPECT_EQ(ch.alpn[0], "postgresql");
  EXPECT_EQ(ch.alpn[1], "proto-01");
  EXPECT_EQ(ch.cipher_suites.size(), 84u);
}

TEST(CorpusHelloTest, DirectTlsAlpnPostgresql) {
  const auto corpus = LoadCorpus();
  const CorpusLine* c = Find(corpus, "real_direct_tls_alpn_postgresql", "37330", 'c');
  ASSERT_NE(c, nullptr);
  const ClientHelloInfo ch = CorpusClientHello(*c);
  EXPECT_EQ(ch.sni, "db.example.test");
  EXPECT_THAT(ch.alpn, ElementsAre("postgresql", "http/1.1"));
}

TEST(CorpusHelloTest, NonAsciiAlpn) {
  const auto corpus = LoadCorpus();
  const CorpusLine* c = Find(corpus, "tls-non-ascii-alpn", "50112", 'c');
  ASSERT_NE(c, nullptr);
  const ClientHelloInfo ch = CorpusClientHello(*c);
  ASSERT_EQ(ch.alpn.size(), 2u);
  EXPECT_EQ(ch.alpn[0], "\xef\xbf\xbd\xef\xbf\xbd");  // as tshark's truth record has it
  EXPECT_EQ(ch.alpn[1], "http/1.1");
  EXPECT_EQ(ch.ja4.substr(0, 10), "t13d151699");
}

TEST(CorpusHelloTest, Sslv3Hellos) {
  const auto corpus = LoadCorpus();
  const CorpusLine* c = Find(corpus, "crafted_sslv3_after_sslrequest", "40002", 'c');
  ASSERT_NE(c, nullptr);
  const ClientHelloInfo ch = CorpusClientHello(*c);
  EXPECT_EQ(VersionName(ch.record_version), "SSLv3");
  EXPECT_EQ(VersionName(ch.version), "TLSv1");
  EXPECT_THAT(ch.cipher_suites, ElementsAre(0x0035, 0x002f, 0x000a, 0x0005, 0x00ff));
  EXPECT_THAT(ch.extensions, ElementsAre(0x0000));
  EXPECT_EQ(ch.sni, "localhost");
}

// Every strict prefix of every real hello body is malformed (or, cut exactly before the
// extensions, a valid extension-less hello).
TEST(CorpusHelloTest, TruncationSweepOfRealHellos) {
  const auto corpus = LoadCorpus();
  int swept = 0;
  for (const auto& c : corpus) {
    if (swept >= 12) break;
    FirstHelloSink sink(c.dir == 'c' ? kHandshakeClientHello : kHandshakeServerHello);
    TlsRecordParser parser;
    parser.Feed(c.records, sink, nullptr);
    if (!sink.found || sink.sslv2) continue;
    ++swept;
    const std::span<const uint8_t> body(sink.message);
    for (size_t n = 0; n < body.size(); ++n) {
      if (c.dir == 'c') {
        ClientHelloInfo ch;
        const ParseResult r = ParseClientHello(body.first(n), 0x0301, &ch);
        if (r == ParseResult::kOk) {
          EXPECT_THAT(ch.extensions, IsEmpty()) << c.capture << " " << n;
        } else {
          EXPECT_EQ(r, ParseResult::kMalformed);
        }
      } else {
        ServerHelloInfo sh;
        const ParseResult r = ParseServerHello(body.first(n), &sh);
        if (r == ParseResult::kOk) {
          EXPECT_THAT(sh.extensions, IsEmpty()) << c.capture << " " << n;
        } else {
          EXPECT_EQ(r, ParseResult::kMalformed);
        }
      }
    }
  }
  EXPECT_EQ(swept, 12);
}

// A cheap stand-in for the fuzz target: deterministic byte mutations of real hello records go
// through the record layer and the hello parsers; run under ASan/UBSan this finds overreads.
TEST(CorpusHelloTest, MutatedHellosAreHandled) {
  const auto corpus = LoadCorpus();
  std::mt19937 rng(5432);
  int parsed = 0;
  for (const auto& c : corpus) {
    for (int round = 0; round < 40; ++round) {
      Bytes b = c.records;
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < flips; ++i) {
        b[rng() % b.size()] = static_cast<uint8_t>(rng());
      }
      FirstHelloSink sink(c.dir == 'c' ? kHandshakeClientHello : kHandshakeServerHello);
      TlsRecordParser parser;
      ParseStats stats;
      const size_t used = parser.Feed(b, sink, &stats);
      EXPECT_LE(used, b.size());
      if (!sink.found) continue;
      ClientHelloInfo ch;
      ServerHelloInfo sh;
      const ParseResult r = sink.sslv2 ? ParseSslv2ClientHello(sink.message, &ch)
                            : c.dir == 'c'
                                ? ParseClientHello(sink.message, sink.record_version, &ch)
                                : ParseServerHello(sink.message, &sh);
      EXPECT_TRUE(r == ParseResult::kOk || r == ParseResult::kMalformed);
      parsed += r == ParseResult::kOk ? 1 : 0;
    }
  }
  EXPECT_GT(parsed, 0);
}

}  // namespace
}  // namespace pgtlsmon::parser
