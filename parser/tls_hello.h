// parser/tls_hello.h: ClientHello and ServerHello bodies, and their fingerprints.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "parser/byte_reader.h"
#include "parser/events.h"

namespace pgtlsmon::parser {

// `body` is the handshake message body (after the 4-byte type/length header).
// Fills every field of *out, including ja3 and ja4. kMalformed when a length overruns.
ParseResult ParseClientHello(std::span<const uint8_t> body, uint16_t record_version,
                             ClientHelloInfo* out);

// An SSLv2-format ClientHello; `message` starts at msg_type (1), as TlsRecordSink delivers it.
// `ja3` stays empty (Wireshark computes no JA3 for this format); `ja4` is computed from the
// hello's version and the TLS-mappable cipher specs (no extensions).
ParseResult ParseSslv2ClientHello(std::span<const uint8_t> message, ClientHelloInfo* out);

// Fills *out, with hello_retry_request set when the random is RFC 8446's HRR value, and ja3s.
ParseResult ParseServerHello(std::span<const uint8_t> body, ServerHelloInfo* out);

// RFC 8446 section 4.1.3: the ServerHello.random that marks a HelloRetryRequest.
inline constexpr std::array<uint8_t, 32> kHelloRetryRequestRandom = {
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c};

// Fingerprints from the parsed fields (the Parse* functions call these). The *String forms
// are the text before hashing, useful to tests and to debug logs.
// JA3 as Wireshark's tls.handshake.ja3_full: "771,4865-4866,0-11-10,29-23,0" (GREASE excluded).
std::string Ja3String(const ClientHelloInfo& ch);
std::string Ja3(const ClientHelloInfo& ch);  // MD5 hex of Ja3String
// JA3S as Wireshark's tls.handshake.ja3s_full: "771,4866,43-51".
std::string Ja3sString(const ServerHelloInfo& sh);
std::string Ja3s(const ServerHelloInfo& sh);
// FoxIO JA4, TCP variant: "t13d1516h2_8daaf6152771_e5627efa2ab1". Ja4Raw is the unhashed
// form ("t13d1516h2_002f,0035,..._0005,000a,..._0403,0804,...", FoxIO's ja4_r).
std::string Ja4(const ClientHelloInfo& ch);
std::string Ja4Raw(const ClientHelloInfo& ch);

// Lower-case hex digests computed with OpenSSL's EVP interface.
std::string Md5Hex(std::string_view data);
std::string Sha256Hex(std::string_view data);

// Parsed hellos by "shape": a client library sends the same hello, but for its random and key
// shares, on every connection, and parsing plus JA3/JA4 is most of a connection's cost. The
// shape is every byte the parsed form depends on (it leaves out the random, session id, key
// shares, PSK identities and padding); it is computed next to the parser, in tls_hello.cc, so
// the two cannot drift apart. Only successful parses are kept; the cache is emptied when full
// (it holds one entry per distinct client/server configuration).
class HelloCache {
 public:
  ParseResult Client(std::span<const uint8_t> body, uint16_t record_version, ClientHelloInfo* out);
  ParseResult Server(std::span<const uint8_t> body, ServerHelloInfo* out);

 private:
  static constexpr size_t kMaxEntries = 1024;
  std::string key_;  // scratch, reused
  absl::flat_hash_map<std::string, ClientHelloInfo> clients_;
  absl::flat_hash_map<std::string, ServerHelloInfo> servers_;
};

}  // namespace pgtlsmon::parser
