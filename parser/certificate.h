// parser/certificate.h: the server's leaf certificate from a TLS 1.2-or-older Certificate
// message, decoded with OpenSSL.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "parser/byte_reader.h"
#include "parser/events.h"

namespace pgtlsmon::parser {

// `body` is the Certificate handshake body (TLS <= 1.2: a 3-byte list length, then 3-byte
// length-prefixed DER certificates). Decodes the first one.
ParseResult ParseCertificateMessage(std::span<const uint8_t> body, CertificateInfo* out);

// Decodes one DER certificate.
ParseResult DecodeCertificate(std::span<const uint8_t> der, CertificateInfo* out);

}  // namespace pgtlsmon::parser
