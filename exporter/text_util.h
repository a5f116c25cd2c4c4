// exporter/text_util.h: small text helpers shared by the JSON writer, metrics and the table.
#pragma once

#include <charconv>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

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

// std::from_chars on the front of `s`: how many characters the number took, 0 if none.
template <typename T>
size_t FromCharsPrefix(std::string_view s, T* v) {
  const auto [end, ec] = std::from_chars(s.data(), std::to_address(s.end()), *v);
  return ec == std::errc() ? static_cast<size_t>(end - s.data()) : 0;
}
// `s` as one number of type T, nothing before or after it (std::from_chars' syntax).
template <typename T>
std::optional<T> ParseWholeNumber(std::string_view s) {
  T v{};
  if (s.empty() || FromCharsPrefix(s, &v) != s.size()) return std::nullopt;
  return v;
}

// "IP:port", "[IPv6]:port" for IPv6, as the `server` label and the table show endpoints.
std::string FormatEndpoint(const parser::Endpoint& e);

}  // namespace pgtlsmon::exporter
