// capture/packet_source.h: the interface every capture back end implements.
#pragma once

#include <cstdint>
#include <span>

#include "absl/status/statusor.h"

namespace pgtlsmon::capture {

// DLT_/LINKTYPE_ values the parser decodes (parser/packet_decoder.h).
inline constexpr uint32_t kLinkNull = 0;  // BSD loopback, host-order AF_ family
inline constexpr uint32_t kLinkEthernet = 1;
inline constexpr uint32_t kLinkRaw = 101;   // LINKTYPE_RAW (DLT_RAW is 12 or 14 on some BSDs)
inline constexpr uint32_t kLinkLoop = 108;  // OpenBSD loopback, network-order AF_ family
inline constexpr uint32_t kLinkLinuxSll = 113;
inline constexpr uint32_t kLinkIpv4 = 228;
inline constexpr uint32_t kLinkIpv6 = 229;
inline constexpr uint32_t kLinkLinuxSll2 = 276;

// One captured packet. `data` is valid only until the next call to Next() on its source.
struct RawPacket {
  uint64_t ts_ns = 0;     // capture time, nanoseconds since the Unix epoch
  uint32_t caplen = 0;    // bytes in data
  uint32_t wire_len = 0;  // bytes on the wire (>= caplen when the snap length cut it)
  uint32_t linktype = 0;
  std::span<const uint8_t> data;
};

class PacketSource {
 public:
  virtual ~PacketSource() = default;
  // Stores the next packet in *pkt and returns true; false at the end of the input.
  // An error names the file or interface and, for files, the byte offset of the damage.
  virtual absl::StatusOr<bool> Next(RawPacket* pkt) = 0;
};

}  // namespace pgtlsmon::capture
