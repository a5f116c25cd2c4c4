// exporter/text_util.h: small text helpers shared by the JSON writer, metrics and the table.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "parser/events.h"

namespace pgtlsmon::exporter {

// Length of the valid UTF-8 sequence starting at s[i] (i < s.size()), 0 if none starts there.
// ASCII bytes are sequences of length 1.
size_t Utf8SequenceLength(std::string_view s, size_t i);

// `s` as valid UTF-8 (invalid bytes -> U+FFFD), cut at a character boundary so that at most
// `max_bytes` bytes are kept. For label values of Prometheus metrics.
std::string ValidUtf8(std::string_view s, size_t max_bytes);

// `s` made safe for a terminal: control characters and invalid UTF-8 bytes become "\xNN",
// at most `max_chars` characters are kept (an ellipsis "..." marks a cut).
std::string TerminalSafe(std::string_view s, size_t max_chars);

// "IP:port", "[IPv6]:port" for IPv6, as the `server` label and the table show endpoints.
std::string FormatEndpoint(const parser::Endpoint& e);

}  // namespace pgtlsmon::exporter
