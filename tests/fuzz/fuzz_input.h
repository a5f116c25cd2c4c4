// tests/fuzz/fuzz_input.h: libFuzzer's input as the types the targets parse, so no target does
// pointer steps or casts of its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace pgtlsmon::fuzz {

// The bytes libFuzzer passes to LLVMFuzzerTestOneInput.
inline std::span<const uint8_t> Input(const uint8_t* data, size_t size) { return {data, size}; }

// The same bytes seen as characters (for targets whose input is text), and back. The two casts
// are the ones fuzz targets need; they are sound because char and unsigned char may alias any
// object.
inline std::string_view AsText(std::span<const uint8_t> bytes) {
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): char aliases any byte
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}
inline std::span<const uint8_t> AsBytes(std::string_view text) {
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): unsigned char aliases any char
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

}  // namespace pgtlsmon::fuzz
