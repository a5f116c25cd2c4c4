#include "parser/text.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace pgtlsmon::parser {
namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";

}  // namespace

std::string ErrnoText(int err) {
  std::array<char, 256> buf{};
  // GNU strerror_r (g++ defines _GNU_SOURCE): returns the text, in `buf` or a static string.
  return strerror_r(err, buf.data(), buf.size());
}

size_t Utf8SequenceLength(std::span<const uint8_t> b) {
  const uint8_t c = b[0];
  if (c < 0x80) return 1;
  size_t n = 0;
  uint8_t lo = 0x80;
  uint8_t hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (b.size() < n) return 0;
  if (b[1] < lo || b[1] > hi) return 0;
  for (size_t i = 2; i < n; ++i) {
    if (b[i] < 0x80 || b[i] > 0xBF) return 0;
  }
  return n;
}

std::string SanitizeUtf8(std::span<const uint8_t> bytes, size_t max_bytes) {
  bytes = bytes.first(std::min(bytes.size(), max_bytes));
  std::string out;
  out.reserve(bytes.size());
  while (!bytes.empty()) {
    const size_t n = Utf8SequenceLength(bytes);
    if (n == 0) {
      out += kReplacement;
      bytes = bytes.subspan(1);
    } else {
      out.append(AsChars(bytes.first(n)));
      bytes = bytes.subspan(n);
    }
  }
  return out;
}

}  // namespace pgtlsmon::parser
