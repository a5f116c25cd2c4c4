// capture/file_source.h: a fast reader of capture files (pcap, pcapng; plain or compressed with
// gzip, zstd or xz).
//
// Reads the file through a ByteReader (capture/byte_reader.h: the compression is recognised by
// content and decompressed on the fly) with large sequential reads into one reused buffer, and
// hands out packets in place (RawPacket::data points into that buffer): no per-packet copy or
// allocation. A record straddling the end of the buffer is moved to its front; a record bigger than
// the buffer grows it, up to FileSourceOptions::max_block_bytes.
//
// Formats:
//  - classic pcap: both byte orders, microsecond (a1b2c3d4) and nanosecond (a1b23c4d) magics,
//    and the "modified" (Kuznetzov, a1b2cd34) variant with 24-byte record headers;
//  - pcapng: any number of sections (each SHB sets its own byte order and drops the previous
//    section's interfaces), per-interface link type, if_tsresol and if_tsoffset; Enhanced,
//    Simple (interface 0, no timestamp: ts_ns 0) and obsolete Packet Blocks. Other blocks
//    (name resolution, statistics, decryption secrets, custom, ...) are skipped and counted;
//  - either of them compressed with gzip (any number of members; bytes after a member that do
//    not start another one are ignored), zstd (any number of frames) or xz (any number of
//    streams).
//
// Damage: Next() returns every packet before the damage, then an error naming the file and the
// byte offset of the bad record (an offset in the decompressed stream for compressed files),
// and the same error on every later call. A compressed stream cut short or corrupt is damage
// too; every packet decompressed before the bad spot is delivered first. Damage is: a
// truncated record or block, a record header whose caplen is larger than the file's snaplen or than
// max_packet_bytes, a pcapng block length that is not a multiple of 4, below 12, above
// max_block_bytes, or different in the block's trailer, a packet block for an interface that was
// never described.
//
// Tolerated (not errors):
//  - caplen > len (wire length): the packet is delivered with wire_len raised to caplen, so
//    RawPacket's invariant wire_len >= caplen holds, and stats().caplen_over_len counts it;
//  - zero-length packets (caplen 0): delivered with empty data;
//  - timestamps going backwards: delivered as they are, counted in stats().ts_backwards.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "capture/byte_reader.h"
#include "capture/packet_source.h"

namespace pgtlsmon::capture {

struct FileSourceOptions {
  size_t read_chunk_bytes = size_t{1} << 20;  // size of each read() (and of the buffer)
  // Compressed bytes read at a time by a decompressing reader (ByteReaderOptions).
  size_t input_block_bytes = size_t{256} << 10;
  // Decompress on a thread of its own (ByteReaderOptions::decompress_in_thread).
  bool decompress_in_thread = false;
  // Largest caplen accepted (libpcap's MAXIMUM_SNAPLEN); a bigger one is damage, not a packet.
  uint32_t max_packet_bytes = 262144;
  // Largest pcapng block accepted (packet blocks also need caplen <= max_packet_bytes).
  uint32_t max_block_bytes = 16u << 20;
  // A caplen above the file's (or pcapng interface's) snaplen is damage. With false, only
  // max_packet_bytes limits caplen (libpcap instead cuts such records to the snaplen).
  bool strict_snaplen = true;
};

enum class FileFormat : uint8_t { kPcap, kPcapNg };

struct FileSourceStats {
  uint64_t records = 0;          // packets handed out by Next()
  uint64_t packet_bytes = 0;     // sum of their caplen
  uint64_t skipped_blocks = 0;   // pcapng blocks that carry no packet (SHB/IDB not included)
  uint64_t sections = 0;         // pcapng section header blocks
  uint64_t caplen_over_len = 0;  // records whose caplen exceeded their wire length
  uint64_t ts_backwards = 0;     // records whose timestamp is before the previous one's
};

class FileSource final : public PacketSource {
 public:
  // Opens `path` ("-" reads standard input) and reads its file header. Errors: cannot open,
  // empty/short file, unknown magic (kInvalidArgument), unsupported version.
  static absl::StatusOr<std::unique_ptr<FileSource>> Open(const std::string& path,
                                                          const FileSourceOptions& options = {});
  ~FileSource() override;
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;

  // The packet's data is valid until the next call to Next(). False at the clean end of file.
  absl::StatusOr<bool> Next(RawPacket* pkt) override;

  const std::string& path() const { return path_; }
  FileFormat format() const { return format_; }
  bool compressed() const { return compressed_; }
  Compression compression() const { return reader_->compression(); }
  // Link type of the pcap file, or of the first pcapng interface (0 before one is seen).
  uint32_t linktype() const { return linktype_; }
  // Snap length of the pcap file, or of the first pcapng interface (0 before one is seen).
  uint32_t snaplen() const { return snaplen_; }
  // For progress: bytes consumed from the file so far (compressed bytes if compressed) against the
  // file's size (0 when unknown, e.g. a pipe).
  uint64_t bytes_read() const { return reader_->raw_bytes_read(); }
  uint64_t file_size() const { return file_size_; }
  const FileSourceStats& stats() const { return stats_; }

 private:
  struct Interface {
    uint32_t linktype = 0;
    uint32_t snaplen = 0;
    // Timestamp units -> ns: ns = ts * mul / div (for 2^-n: ns = (ts * 1e9) >> shift).
    uint64_t mul = 1000;
    uint64_t div = 1;
    uint32_t shift = 0;
    bool binary = false;
    int64_t offset_ns = 0;  // if_tsoffset
  };

  FileSource(std::string path, std::unique_ptr<ByteReader> reader, uint64_t file_size,
             const FileSourceOptions& options);

  absl::Status Init();
  // Ensures at least `need` bytes from pos_ are buffered. False when the input ends first
  // (then avail() < need); an I/O or decompression error is returned as a status.
  absl::StatusOr<bool> Fill(size_t need);
  // The whole buffer, and its unread bytes [pos_, end_).
  std::span<uint8_t> storage() { return {buf_.get(), cap_}; }
  std::span<const uint8_t> window() const {
    return std::span<const uint8_t>(buf_.get(), end_).subspan(pos_);
  }
  size_t avail() const { return end_ - pos_; }
  uint64_t offset() const { return base_offset_ + pos_; }

  absl::StatusOr<bool> NextPcap(RawPacket* pkt);
  absl::StatusOr<bool> NextPcapNg(RawPacket* pkt);
  absl::Status ParseSectionHeader(std::span<const uint8_t> block);
  absl::Status ParseInterface(std::span<const uint8_t> block);
  absl::Status Damage(uint64_t at, absl::string_view what) const;
  absl::Status Truncated(uint64_t at, absl::string_view what, uint64_t need) const;
  // Hands out `data` (a view into buf_) as the next packet; len is its wire length.
  void Deliver(RawPacket* pkt, uint64_t ts_ns, bool has_ts, uint32_t len, uint32_t linktype,
               std::span<const uint8_t> data);
  uint32_t CaplenLimit(uint32_t snaplen) const;

  std::string path_;
  std::unique_ptr<ByteReader> reader_;  // plain or decompressing
  bool compressed_ = false;
  FileSourceOptions options_;
  FileFormat format_ = FileFormat::kPcap;
  uint64_t file_size_ = 0;

  std::unique_ptr<uint8_t[]> buf_;
  size_t cap_ = 0;
  size_t pos_ = 0;            // next unread byte in buf_
  size_t end_ = 0;            // end of valid bytes in buf_
  uint64_t base_offset_ = 0;  // stream offset of buf_[0]
  bool eof_ = false;
  absl::Status sticky_error_;

  bool swapped_ = false;
  // pcap
  bool nanos_ = false;
  size_t record_header_len_ = 16;
  uint32_t snaplen_ = 0;
  uint32_t linktype_ = 0;
  // pcapng
  std::vector<Interface> interfaces_;
  bool seen_section_ = false;

  uint64_t last_ts_ns_ = 0;
  FileSourceStats stats_;
};

}  // namespace pgtlsmon::capture
