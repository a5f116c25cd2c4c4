// parser/byte_reader.h: the one place doing arithmetic on packet bytes.
//
// A ByteReader is a view over bytes it does not own; every read is bounds-checked and
// returns std::nullopt past the end. Parse every length-prefixed structure through Sub(),
// so a child can never read past its parent.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace pgtlsmon::parser {

class ByteReader {
 public:
  ByteReader() = default;
  explicit ByteReader(std::span<const uint8_t> b) : buf_(b) {}

  size_t remaining() const { return buf_.size(); }
  bool empty() const { return buf_.empty(); }
  std::span<const uint8_t> rest() const { return buf_; }

  std::optional<uint8_t> U8() {
    if (buf_.empty()) return std::nullopt;
    const uint8_t v = buf_[0];
    buf_ = buf_.subspan(1);
    return v;
  }
  std::optional<uint16_t> U16Be() {
    if (buf_.size() < 2) return std::nullopt;
    const auto v = static_cast<uint16_t>((buf_[0] << 8) | buf_[1]);
    buf_ = buf_.subspan(2);
    return v;
  }
  std::optional<uint32_t> U24Be() {
    if (buf_.size() < 3) return std::nullopt;
    const uint32_t v = (uint32_t{buf_[0]} << 16) | (uint32_t{buf_[1]} << 8) | buf_[2];
    buf_ = buf_.subspan(3);
    return v;
  }
  std::optional<uint32_t> U32Be() {
    if (buf_.size() < 4) return std::nullopt;
    const uint32_t v =
        (uint32_t{buf_[0]} << 24) | (uint32_t{buf_[1]} << 16) | (uint32_t{buf_[2]} << 8) | buf_[3];
    buf_ = buf_.subspan(4);
    return v;
  }
  // A view of the next n bytes; advances.
  std::optional<std::span<const uint8_t>> Bytes(size_t n) {
    if (buf_.size() < n) return std::nullopt;
    auto v = buf_.first(n);
    buf_ = buf_.subspan(n);
    return v;
  }
  // A bounded child over the next n bytes; advances the parent past them.
  std::optional<ByteReader> Sub(size_t n) {
    auto b = Bytes(n);
    if (!b) return std::nullopt;
    return ByteReader(*b);
  }
  bool Skip(size_t n) { return Bytes(n).has_value(); }

 private:
  std::span<const uint8_t> buf_;
};

// Reads without advancing, for peeking at fixed offsets of a buffer.
inline std::optional<uint16_t> PeekU16Be(std::span<const uint8_t> b, size_t off) {
  if (off > b.size() || b.size() - off < 2) return std::nullopt;
  return static_cast<uint16_t>((b[off] << 8) | b[off + 1]);
}
inline std::optional<uint32_t> PeekU32Be(std::span<const uint8_t> b, size_t off) {
  if (off > b.size() || b.size() - off < 4) return std::nullopt;
  return (uint32_t{b[off]} << 24) | (uint32_t{b[off + 1]} << 16) | (uint32_t{b[off + 2]} << 8) |
         b[off + 3];
}

// The per-packet parse verdict (STYLE.md §3).
enum class ParseResult { kOk, kNeedMore, kMalformed, kNotThisProtocol };

}  // namespace pgtlsmon::parser
