// The libpcap floor: a pcap_next_ex() loop that only counts packets and captured bytes.
// This is the cost any libpcap-based reader (tcpdump, ndpiReader, pgtlsmon's pcap source)
// pays before doing any work of its own.
//
//   pgtls_floor_libpcap [--fopen] FILE
//     (default)  pcap_open_offline(FILE): libpcap's own stdio FILE* and buffer size
//     --fopen    fopen() + setvbuf(256 KiB, _IOFBF) + pcap_fopen_offline()
//   -> "packets=N bytes=B" on stdout, exit 0; exit 1 on an error.
#include <pcap/pcap.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>

namespace {

constexpr size_t kStdioBufferSize = size_t{256} << 10;  // 256 KiB

}  // namespace

int main(int argc, char** argv) {
  bool use_fopen = false;
  const char* path = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--fopen") == 0) {
      use_fopen = true;
    } else if (path == nullptr && argv[i][0] != '-') {
      path = argv[i];
    } else {
      path = nullptr;
      break;
    }
  }
  if (path == nullptr) {
    std::fprintf(stderr, "usage: %s [--fopen] FILE\n", argv[0]);
    return 2;
  }

  char errbuf[PCAP_ERRBUF_SIZE] = {};
  pcap_t* pcap = nullptr;
  // Must outlive the pcap_t: the FILE* reads into it until pcap_close() closes the file.
  std::unique_ptr<char[]> stdio_buf;
  if (use_fopen) {
    FILE* fp = std::fopen(path, "rb");
    if (fp == nullptr) {
      std::perror(path);
      return 1;
    }
    stdio_buf.reset(new char[kStdioBufferSize]);
    if (std::setvbuf(fp, stdio_buf.get(), _IOFBF, kStdioBufferSize) != 0) {
      std::fprintf(stderr, "%s: setvbuf failed\n", path);
      std::fclose(fp);
      return 1;
    }
    pcap = pcap_fopen_offline(fp, errbuf);  // takes ownership of fp on success
    if (pcap == nullptr) std::fclose(fp);
  } else {
    pcap = pcap_open_offline(path, errbuf);
  }
  if (pcap == nullptr) {
    std::fprintf(stderr, "%s: %s\n", path, errbuf);
    return 1;
  }

  uint64_t packets = 0;
  uint64_t bytes = 0;
  pcap_pkthdr* hdr = nullptr;
  const u_char* data = nullptr;
  int rc;
  while ((rc = pcap_next_ex(pcap, &hdr, &data)) == 1) {
    ++packets;
    bytes += hdr->caplen;
  }
  int status = 0;
  if (rc == PCAP_ERROR) {
    std::fprintf(stderr, "%s: %s\n", path, pcap_geterr(pcap));
    status = 1;
  }
  pcap_close(pcap);
  std::printf("packets=%llu bytes=%llu\n", static_cast<unsigned long long>(packets),
              static_cast<unsigned long long>(bytes));
  return status;
}
