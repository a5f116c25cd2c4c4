#include "exporter/text_util.h"

#include <cstdint>
#include <span>

#include "parser/text.h"

namespace pgtlsmon::exporter {

size_t Utf8SequenceLength(std::string_view s, size_t i) {
  return parser::Utf8SequenceLength(parser::AsBytes(s.substr(i)));
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
      parser::AppendHex(c, 2, &out);
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
