// fuzz_file_source: the input is a capture file (pcap, pcapng, gzip'ed either), written to a
// memfd and read through capture::FileSource to the end or the first error; every packet is
// decoded as the replay does.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>

#include "capture/file_source.h"
#include "parser/packet_decoder.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pgtlsmon;
  const int fd = memfd_create("fuzz_file_source", MFD_CLOEXEC);
  if (fd < 0) return 0;
  const std::span<const uint8_t> input = pgtlsmon::fuzz::Input(data, size);
  size_t off = 0;
  while (off < input.size()) {
    const std::span<const uint8_t> rest = input.subspan(off);
    const ssize_t n = write(fd, rest.data(), rest.size());
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  capture::FileSourceOptions opts;
  // A small buffer, so records straddle it and the buffer has to grow; small caps so a header
  // claiming a huge record is damage, not a big allocation.
  opts.read_chunk_bytes = 256;
  opts.max_packet_bytes = 65536;
  opts.max_block_bytes = 1u << 20;
  opts.strict_snaplen = size % 2 == 0;
  auto src = capture::FileSource::Open("/proc/self/fd/" + std::to_string(fd), opts);
  if (src.ok()) {
    capture::RawPacket pkt;
    for (int i = 0; i < 100000; ++i) {
      auto more = (*src)->Next(&pkt);
      if (!more.ok() || !*more) break;
      if (pkt.data.size() != pkt.caplen || pkt.wire_len < pkt.caplen) __builtin_trap();
      parser::TcpSegment seg;
      parser::ParseStats stats;
      (void)parser::DecodeTcpSegment(pkt.linktype, pkt.data, &seg, &stats);
    }
  }
  close(fd);
  return 0;
}
