// capture/open_capture.h: one call that opens any capture file the project can read.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "capture/file_source.h"
#include "capture/packet_source.h"

namespace pgtlsmon::capture {

// Opens `path` with the fast FileSource (pcap, pcapng, gzip'ed either; "-" is standard input)
// and, when FileSource does not recognise the file's magic, through libpcap
// (PcapSource::OpenOffline). The error names the file; when both fail, it is FileSource's.
absl::StatusOr<std::unique_ptr<PacketSource>> OpenCaptureFile(
    const std::string& path, const FileSourceOptions& options = {});

}  // namespace pgtlsmon::capture
