// The theoretical floor for replaying a capture: read() the file into one reused 1 MiB
// buffer and walk the classic pcap record headers, counting packets and captured bytes.
// No per-packet copy, no libpcap, no parsing: anything that reads every packet of the
// file cannot be faster than this on the same machine and page-cache state.
//
//   pgtls_floor_read FILE
//   -> "packets=N bytes=B" on stdout (B = sum of captured lengths), exit 0;
//      exit 1 on an unreadable, non-pcap or truncated file.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>

namespace {

constexpr size_t kBufferSize = size_t{1} << 20;  // 1 MiB, reused for the whole file
constexpr size_t kFileHeaderSize = 24;
constexpr size_t kRecordHeaderSize = 16;

uint32_t Load32(const unsigned char* p, bool swap) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return swap ? __builtin_bswap32(v) : v;
}

// Reads until `want` bytes are in buf[0..want) or EOF; returns the byte count, -1 on error.
ssize_t ReadFull(int fd, unsigned char* buf, size_t want) {
  size_t got = 0;
  while (got < want) {
    ssize_t n = read(fd, buf + got, want - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(got);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s FILE\n", argv[0]);
    return 2;
  }
  const char* path = argv[1];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    std::fprintf(stderr, "%s: %s\n", path, std::strerror(errno));
    return 1;
  }
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  std::unique_ptr<unsigned char[]> buf(new unsigned char[kBufferSize]);

  ssize_t n = ReadFull(fd, buf.get(), kBufferSize);
  if (n < static_cast<ssize_t>(kFileHeaderSize)) {
    std::fprintf(stderr, "%s: %s\n", path, n < 0 ? std::strerror(errno) : "too short for pcap");
    return 1;
  }
  uint32_t magic;
  std::memcpy(&magic, buf.get(), sizeof magic);
  bool swap;
  if (magic == 0xa1b2c3d4 || magic == 0xa1b23c4d) {
    swap = false;
  } else if (magic == 0xd4c3b2a1 || magic == 0x4d3cb2a1) {
    swap = true;
  } else {
    std::fprintf(stderr, "%s: not a classic pcap file (magic 0x%08x)\n", path, magic);
    return 1;
  }

  uint64_t packets = 0;
  uint64_t bytes = 0;
  size_t pos = kFileHeaderSize;
  size_t end = static_cast<size_t>(n);
  bool eof = end < kBufferSize;
  for (;;) {
    // Walk every record wholly inside the buffer; only the header is touched.
    while (end - pos >= kRecordHeaderSize) {
      uint32_t caplen = Load32(buf.get() + pos + 8, swap);
      if (end - pos - kRecordHeaderSize < caplen) break;
      pos += kRecordHeaderSize + caplen;
      ++packets;
      bytes += caplen;
    }
    if (eof) break;
    // Keep the partial record at the front and refill behind it.
    size_t rest = end - pos;
    if (rest >= kRecordHeaderSize &&
        Load32(buf.get() + pos + 8, swap) > kBufferSize - kRecordHeaderSize) {
      std::fprintf(stderr, "%s: record of %u bytes is larger than the buffer\n", path,
                   Load32(buf.get() + pos + 8, swap));
      return 1;
    }
    std::memmove(buf.get(), buf.get() + pos, rest);
    n = ReadFull(fd, buf.get() + rest, kBufferSize - rest);
    if (n < 0) {
      std::fprintf(stderr, "%s: %s\n", path, std::strerror(errno));
      return 1;
    }
    pos = 0;
    end = rest + static_cast<size_t>(n);
    eof = end < kBufferSize;
  }
  close(fd);
  std::printf("packets=%llu bytes=%llu\n", static_cast<unsigned long long>(packets),
              static_cast<unsigned long long>(bytes));
  if (pos != end) {
    std::fprintf(stderr, "%s: truncated record at the end (%zu bytes left)\n", path, end - pos);
    return 1;
  }
  return 0;
}
