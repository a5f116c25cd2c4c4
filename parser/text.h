// parser/text.h: turning wire bytes into text for records.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace pgtlsmon::parser {

// Lower-case hexadecimal, the one helper for it (fingerprints, codes in records, escapes).
inline constexpr std::string_view kHexDigits = "0123456789abcdef";
// The low `digits` nibbles of `v`, most significant first: AppendHex(0x2f, 4, &s) adds "002f".
inline void AppendHex(uint32_t v, int digits, std::string* out) {
  for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4) {
    out->push_back(kHexDigits[(v >> shift) & 0xfu]);
  }
}
// Two digits per byte.
inline void AppendHexBytes(std::span<const uint8_t> bytes, std::string* out) {
  for (uint8_t b : bytes) AppendHex(b, 2, out);
}

// Bytes seen as characters, and characters as bytes: text built from wire bytes, wire bytes
// read from text. The one place these casts are written; char and unsigned char may alias any
// object.
inline std::string_view AsChars(std::span<const uint8_t> bytes) {
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): char aliases any byte
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}
inline std::span<const uint8_t> AsBytes(std::string_view text) {
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): unsigned char aliases any char
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

// strerror(err), but safe to call from any thread (std::strerror is not).
std::string ErrnoText(int err);

// Length of the valid UTF-8 sequence at the front of `b` (non-empty), 0 if none starts there
// (overlong forms, surrogates and code points past U+10FFFF are invalid, as in RFC 3629).
size_t Utf8SequenceLength(std::span<const uint8_t> b);

// Decodes `bytes` as UTF-8; each byte that is not part of a valid sequence becomes U+FFFD
// (session-record.md: "each invalid byte becoming U+FFFD"; overlong forms, surrogates and
// code points past U+10FFFF are invalid). At most `max_bytes` input bytes are read.
std::string SanitizeUtf8(std::span<const uint8_t> bytes, size_t max_bytes = 1024);

}  // namespace pgtlsmon::parser
