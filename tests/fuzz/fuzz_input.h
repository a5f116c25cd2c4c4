// tests/fuzz/fuzz_input.h: libFuzzer's input as a span, so no target does pointer steps of its
// own. Targets whose input is text see it through parser::AsChars (parser/text.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "parser/text.h"

namespace pgtlsmon::fuzz {

// The bytes libFuzzer passes to LLVMFuzzerTestOneInput.
inline std::span<const uint8_t> Input(const uint8_t* data, size_t size) { return {data, size}; }

}  // namespace pgtlsmon::fuzz
