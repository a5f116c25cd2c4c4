// parser/text.h: turning wire bytes into text for records.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace pgtlsmon::parser {

// Decodes `bytes` as UTF-8; each byte that is not part of a valid sequence becomes U+FFFD
// (session-record.md: "each invalid byte becoming U+FFFD"; overlong forms, surrogates and
// code points past U+10FFFF are invalid). At most `max_bytes` input bytes are read.
// Length of the valid UTF-8 sequence at the front of `b` (non-empty), 0 if none starts there
// (overlong forms, surrogates and code points past U+10FFFF are invalid, as in RFC 3629).
size_t Utf8SequenceLength(std::span<const uint8_t> b);

std::string SanitizeUtf8(std::span<const uint8_t> bytes, size_t max_bytes = 1024);

}  // namespace pgtlsmon::parser
