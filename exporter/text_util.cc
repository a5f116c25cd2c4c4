#include "exporter/text_util.h"

#include <cstdint>

namespace pgtlsmon::exporter {

size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) return 1;
  size_t len = 0;
  uint8_t lo = 0x80;
  uint8_t hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // UTF-16 surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (s.size() - i < len) return 0;
  const auto b1 = static_cast<uint8_t>(s[i + 1]);
  if (b1 < lo || b1 > hi) return 0;
  for (size_t k = 2; k < len; ++k) {
    const auto b = static_cast<uint8_t>(s[i + k]);
    if (b < 0x80 || b > 0xBF) return 0;
  }
  return len;
}

std::string ValidUtf8(std::string_view s, size_t max_bytes) {
  std::string out;
  out.reserve(s.size() < max_bytes ? s.size() : max_bytes);
  size_t i = 0;
  while (i < s.size()) {
    const size_t len = Utf8SequenceLength(s, i);
    const std::string_view piece = len != 0 ? s.substr(i, len) : std::string_view("\xEF\xBF\xBD");
    if (out.size() + piece.size() > max_bytes) break;
    out.append(piece);
    i += len != 0 ? len : 1;
  }
  return out;
}

std::string TerminalSafe(std::string_view s, size_t max_chars) {
  static constexpr std::string_view kHex = "0123456789abcdef";
  std::string out;
  size_t chars = 0;
  size_t i = 0;
  while (i < s.size()) {
    if (chars == max_chars) {
      // Replace the tail with an ellipsis, keeping the width at max_chars.
      size_t drop = 0;
      while (drop < 3 && !out.empty()) {
        // Drop whole characters (continuation bytes belong to the one before).
        while (!out.empty() && (static_cast<uint8_t>(out.back()) & 0xC0) == 0x80) out.pop_back();
        if (!out.empty()) out.pop_back();
        ++drop;
      }
      out.append(drop, '.');
      return out;
    }
    const auto c = static_cast<uint8_t>(s[i]);
    const size_t len = Utf8SequenceLength(s, i);
    // C1 controls (U+0080..U+009F, encoded C2 80..C2 9F) are escape sequences for terminals too.
    const bool c1 = len == 2 && c == 0xC2 && static_cast<uint8_t>(s[i + 1]) < 0xA0;
    if (len == 0 || c < 0x20 || c == 0x7f || c1) {
      if (chars + 4 > max_chars) {
        chars = max_chars;
        continue;
      }
      out.append("\\x");
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
      chars += 4;
      ++i;
      continue;
    }
    out.append(s.substr(i, len));
    i += len;
    ++chars;
  }
  return out;
}

std::string FormatEndpoint(const parser::Endpoint& e) {
  std::string out;
  if (e.ip.is_v6) {
    out.push_back('[');
    out.append(parser::FormatIp(e.ip));
    out.push_back(']');
  } else {
    out.append(parser::FormatIp(e.ip));
  }
  out.push_back(':');
  out.append(std::to_string(e.port));
  return out;
}

}  // namespace pgtlsmon::exporter
