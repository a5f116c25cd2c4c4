// capture/open_capture.cc: see open_capture.h.
#include "capture/open_capture.h"

#include <utility>

#include "capture/pcap_source.h"

namespace pgtlsmon::capture {

absl::StatusOr<std::unique_ptr<PacketSource>> OpenCaptureFile(const std::string& path,
                                                              const FileSourceOptions& options) {
  auto fast = FileSource::Open(path, options);
  if (fast.ok()) return std::unique_ptr<PacketSource>(std::move(*fast));
  // Only an unknown magic is worth a second opinion; I/O errors and damage are final.
  if (!absl::IsInvalidArgument(fast.status()) || path == "-") return fast.status();
  auto slow = PcapSource::OpenOffline(path);
  if (slow.ok()) return std::unique_ptr<PacketSource>(std::move(*slow));
  return fast.status();
}

}  // namespace pgtlsmon::capture
