// parser/tls_names.h: names from the IANA registries (versions, cipher suites, alerts).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pgtlsmon::parser {

// RFC 8701 GREASE values 0x0a0a, 0x1a1a, ..., 0xfafa.
constexpr bool IsGrease(uint16_t v) { return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff); }

// "SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", else "0x%04x".
std::string VersionName(uint16_t v);
// Rank of a known version (SSLv2 = 0 ... TLSv1.3 = 5), -1 for an unknown code.
int VersionRank(uint16_t v);
inline constexpr int kRankTls12 = 4;

// IANA name of a cipher suite ("TLS_AES_128_GCM_SHA256"), empty if unassigned.
std::string_view CipherName(uint16_t suite);
// NULL encryption, anonymous key exchange, EXPORT, RC4, DES, 3DES, IDEA, RC2 or MD5 MAC.
bool IsWeakCipher(uint16_t suite);

// IANA TLS alert description name ("handshake_failure"), else the decimal code.
std::string AlertName(uint8_t description);
std::string_view AlertLevelName(uint8_t level);  // "warning", "fatal", else ""

std::string HexCode(uint16_t v);  // "0x%04x"

}  // namespace pgtlsmon::parser
