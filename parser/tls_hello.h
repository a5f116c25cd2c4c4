// parser/tls_hello.h: ClientHello and ServerHello bodies, and their fingerprints.
#pragma once

#include <cstdint>
#include <span>

#include "parser/byte_reader.h"
#include "parser/events.h"

namespace pgtlsmon::parser {

// `body` is the handshake message body (after the 4-byte type/length header).
// Fills every field of *out, including ja3 and ja4. kMalformed when a length overruns.
ParseResult ParseClientHello(std::span<const uint8_t> body, uint16_t record_version,
                             ClientHelloInfo* out);

// An SSLv2-format ClientHello; `message` starts at msg_type (1), as TlsRecordSink delivers it.
ParseResult ParseSslv2ClientHello(std::span<const uint8_t> message, ClientHelloInfo* out);

// Fills *out, with hello_retry_request set when the random is RFC 8446's HRR value, and ja3s.
ParseResult ParseServerHello(std::span<const uint8_t> body, ServerHelloInfo* out);

}  // namespace pgtlsmon::parser
