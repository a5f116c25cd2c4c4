// fuzz_packet: DecodeTcpSegment over a link type chosen by the first byte.
#include <cstddef>
#include <cstdint>
#include <span>

#include "capture/packet_source.h"
#include "parser/packet_decoder.h"
#include "tests/fuzz/fuzz_input.h"
#include "tests/fuzz/segment_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pgtlsmon;
  static constexpr uint32_t kLinks[] = {capture::kLinkNull,
                                        capture::kLinkEthernet,
                                        capture::kLinkRaw,
                                        capture::kLinkLoop,
                                        capture::kLinkLinuxSll,
                                        capture::kLinkIpv4,
                                        capture::kLinkIpv6,
                                        capture::kLinkLinuxSll2,
                                        12,
                                        14,
                                        0xdead};
  const std::span<const uint8_t> input = pgtlsmon::fuzz::Input(data, size);
  if (input.empty()) return 0;
  const uint32_t link = kLinks[input[0] % (sizeof(kLinks) / sizeof(kLinks[0]))];
  const std::span<const uint8_t> frame = input.subspan(1);
  parser::TcpSegment seg;
  parser::ParseStats stats;
  if (parser::DecodeTcpSegment(link, frame, &seg, &stats) == parser::ParseResult::kOk) {
    fuzz::CheckSegmentInFrame(seg, frame);
  }
  return 0;
}
