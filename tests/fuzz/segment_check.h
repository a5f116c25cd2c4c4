// tests/fuzz/segment_check.h: the invariant every fuzz target that decodes frames asserts.
#pragma once

#include <span>

#include "parser/packet_decoder.h"

namespace pgtlsmon::fuzz {

// A decoded TCP payload lies inside the frame, and no more of it was captured than travelled.
inline void CheckSegmentInFrame(const parser::TcpSegment& seg, std::span<const uint8_t> frame) {
  if (!seg.payload.empty() &&
      (seg.payload.data() < frame.data() ||
       seg.payload.data() + seg.payload.size() > frame.data() + frame.size()))
    __builtin_trap();
  if (seg.payload_wire_len < seg.payload.size()) __builtin_trap();
}

}  // namespace pgtlsmon::fuzz
