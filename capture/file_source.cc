// capture/file_source.cc: see file_source.h.
#include "capture/file_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <span>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace pgtlsmon::capture {
namespace {

constexpr uint32_t kPcapMagicMicro = 0xa1b2c3d4;
constexpr uint32_t kPcapMagicNano = 0xa1b23c4d;
constexpr uint32_t kPcapMagicModified = 0xa1b2cd34;  // Kuznetzov's patched libpcap
constexpr size_t kPcapFileHeaderLen = 24;

constexpr uint32_t kBlockSectionHeader = 0x0a0d0d0a;
constexpr uint32_t kBlockInterface = 0x00000001;
constexpr uint32_t kBlockPacketObsolete = 0x00000002;
constexpr uint32_t kBlockSimplePacket = 0x00000003;
constexpr uint32_t kBlockEnhancedPacket = 0x00000006;
constexpr uint32_t kByteOrderMagic = 0x1a2b3c4d;
constexpr uint16_t kOptEndOfOpt = 0;
constexpr uint16_t kOptIfTsresol = 9;
constexpr uint16_t kOptIfTsoffset = 14;

constexpr uint32_t kLinkTypeMask = 0x03ffffff;  // upper bits of the pcap header's field: FCS info
constexpr uint64_t kNsPerSec = 1000000000;
constexpr size_t kMinBufferBytes = size_t{64} << 10;

uint32_t Swap32(uint32_t v) { return __builtin_bswap32(v); }

// A fixed-size field at `off` of a record or block whose length the caller has checked
// (span::subspan asserts it in builds with _GLIBCXX_ASSERTIONS), in native byte order.
template <typename T>
T Load(std::span<const uint8_t> bytes, size_t off) {
  T v{};
  std::memcpy(&v, bytes.subspan(off, sizeof v).data(), sizeof v);
  return v;
}

// The fields of one record or block, in the file's (or pcapng section's) byte order.
class Fields {
 public:
  Fields(std::span<const uint8_t> bytes, bool swapped) : bytes_(bytes), swapped_(swapped) {}
  uint16_t U16(size_t off) const {
    const auto v = Load<uint16_t>(bytes_, off);
    return swapped_ ? __builtin_bswap16(v) : v;
  }
  uint32_t U32(size_t off) const {
    const auto v = Load<uint32_t>(bytes_, off);
    return swapped_ ? __builtin_bswap32(v) : v;
  }
  uint64_t U64(size_t off) const {
    const auto v = Load<uint64_t>(bytes_, off);
    return swapped_ ? __builtin_bswap64(v) : v;
  }

 private:
  std::span<const uint8_t> bytes_;
  bool swapped_;
};

uint64_t Pow10(uint32_t n) {
  uint64_t v = 1;
  while (n-- > 0) v *= 10;
  return v;
}

}  // namespace

FileSource::FileSource(std::string path, std::unique_ptr<ByteReader> reader, uint64_t file_size,
                       const FileSourceOptions& options)
    : path_(std::move(path)),
      reader_(std::move(reader)),
      options_(options),
      file_size_(file_size) {}

FileSource::~FileSource() = default;

absl::StatusOr<std::unique_ptr<FileSource>> FileSource::Open(const std::string& path,
                                                             const FileSourceOptions& options) {
  // The reader closes the descriptor, so standard input is handed over as a duplicate.
  const int fd = path == "-" ? fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 0)
                             : open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("open ", path));
  uint64_t file_size = 0;
  struct stat st {};
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    file_size = static_cast<uint64_t>(st.st_size);
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  }
  ByteReaderOptions ro;
  ro.input_block_bytes = options.input_block_bytes;
  ro.decompress_in_thread = options.decompress_in_thread;
  auto reader = OpenByteReader(fd, path, ro);
  if (!reader.ok()) return reader.status();
  std::unique_ptr<FileSource> src(new FileSource(path, std::move(*reader), file_size, options));
  if (absl::Status s = src->Init(); !s.ok()) return s;
  return src;
}

absl::Status FileSource::Damage(uint64_t at, absl::string_view what) const {
  return absl::DataLossError(absl::StrCat(path_, ": ", what, " at offset ", at,
                                          compressed_ ? " (of the decompressed stream)" : ""));
}

absl::Status FileSource::Truncated(uint64_t at, absl::string_view what, uint64_t need) const {
  return absl::DataLossError(absl::StrCat(
      path_, ": truncated ", what, " at offset ", at, ": needs ", need, " bytes, the file has ",
      avail(), compressed_ ? " (offsets in the decompressed stream)" : ""));
}

uint32_t FileSource::CaplenLimit(uint32_t snaplen) const {
  // A snaplen of 0 or beyond our maximum is a writer's bug or "unlimited": use the maximum.
  return (options_.strict_snaplen && snaplen != 0 && snaplen < options_.max_packet_bytes)
             ? snaplen
             : options_.max_packet_bytes;
}

absl::StatusOr<bool> FileSource::Fill(size_t need) {
  if (avail() >= need) return true;
  if (need > cap_) {
    const size_t new_cap = std::max(need, options_.read_chunk_bytes);
    auto bigger = std::make_unique_for_overwrite<uint8_t[]>(new_cap);
    std::ranges::copy(window(), bigger.get());
    buf_ = std::move(bigger);
    cap_ = new_cap;
    base_offset_ += pos_;
    end_ -= pos_;
    pos_ = 0;
  } else if (cap_ - pos_ < need) {
    std::ranges::copy(window(), storage().begin());  // to the front: copy() allows the overlap
    base_offset_ += pos_;
    end_ -= pos_;
    pos_ = 0;
  }
  while (avail() < need && !eof_) {
    const std::span<uint8_t> free = storage().subspan(end_);
    auto got = reader_->Read(free.data(), free.size());
    if (!got.ok()) return got.status();
    if (*got == 0) eof_ = true;
    end_ += *got;
  }
  return avail() >= need;
}

absl::Status FileSource::Init() {
  options_.read_chunk_bytes = std::max(options_.read_chunk_bytes, kMinBufferBytes);
  options_.max_block_bytes = std::max(options_.max_block_bytes, options_.max_packet_bytes + 64);
  compressed_ = reader_->compression() != Compression::kNone;
  cap_ = options_.read_chunk_bytes;
  // A small plain file needs no buffer bigger than itself (many small files open at once).
  if (!compressed_ && file_size_ > 0) {
    cap_ = std::min(cap_, std::max<size_t>(kMinBufferBytes, file_size_ + 64));
  }
  buf_ = std::make_unique_for_overwrite<uint8_t[]>(cap_);
  auto ok = Fill(4);
  if (!ok.ok()) return ok.status();
  if (!*ok) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": too short to be a capture file (", avail(), " bytes at offset 0)"));
  }

  const std::span<const uint8_t> head = window();
  const auto magic = Load<uint32_t>(head, 0);
  if (magic == kBlockSectionHeader) {
    format_ = FileFormat::kPcapNg;
    return absl::OkStatus();  // Next() reads the SHB like any block
  }
  bool known = true;
  if (magic == kPcapMagicMicro || magic == kPcapMagicNano || magic == kPcapMagicModified) {
    swapped_ = false;
  } else if (magic == Swap32(kPcapMagicMicro) || magic == Swap32(kPcapMagicNano) ||
             magic == Swap32(kPcapMagicModified)) {
    swapped_ = true;
  } else {
    known = false;
  }
  if (!known) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: not a pcap or pcapng file (magic %02x %02x %02x %02x at offset 0)",
                        path_, head[0], head[1], head[2], head[3]));
  }
  const uint32_t m = Fields(head, swapped_).U32(0);
  nanos_ = m == kPcapMagicNano;
  record_header_len_ = m == kPcapMagicModified ? 24 : 16;
  format_ = FileFormat::kPcap;
  ok = Fill(kPcapFileHeaderLen);
  if (!ok.ok()) return ok.status();
  if (!*ok) return Truncated(0, "pcap file header", kPcapFileHeaderLen);
  const Fields h(window().first(kPcapFileHeaderLen), swapped_);
  const uint16_t major = h.U16(4);
  if (major != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": unsupported pcap version ", major, ".", h.U16(6), " at offset 4"));
  }
  snaplen_ = h.U32(16);
  linktype_ = h.U32(20) & kLinkTypeMask;
  pos_ += kPcapFileHeaderLen;
  return absl::OkStatus();
}

void FileSource::Deliver(RawPacket* pkt, uint64_t ts_ns, bool has_ts, uint32_t len,
                         uint32_t linktype, std::span<const uint8_t> data) {
  const auto caplen = static_cast<uint32_t>(data.size());
  if (len < caplen) {
    ++stats_.caplen_over_len;
    len = caplen;
  }
  if (has_ts) {
    if (ts_ns < last_ts_ns_) ++stats_.ts_backwards;
    last_ts_ns_ = ts_ns;
  }
  ++stats_.records;
  stats_.packet_bytes += caplen;
  pkt->ts_ns = ts_ns;
  pkt->caplen = caplen;
  pkt->wire_len = len;
  pkt->linktype = linktype;
  pkt->data = data;
}

absl::StatusOr<bool> FileSource::Next(RawPacket* pkt) {
  if (!sticky_error_.ok()) return sticky_error_;
  auto res = format_ == FileFormat::kPcap ? NextPcap(pkt) : NextPcapNg(pkt);
  if (!res.ok()) sticky_error_ = res.status();
  return res;
}

absl::StatusOr<bool> FileSource::NextPcap(RawPacket* pkt) {
  const size_t hl = record_header_len_;
  if (avail() < hl) {
    auto ok = Fill(hl);
    if (!ok.ok()) return ok.status();
    if (!*ok) {
      if (avail() == 0) return false;
      return Truncated(offset(), "record header", hl);
    }
  }
  const uint32_t caplen = Fields(window().first(hl), swapped_).U32(8);
  if (caplen > CaplenLimit(snaplen_)) {
    return Damage(offset(), absl::StrCat("record caplen ", caplen, " larger than ",
                                         CaplenLimit(snaplen_) != options_.max_packet_bytes
                                             ? "the file's snaplen "
                                             : "the maximum ",
                                         CaplenLimit(snaplen_)));
  }
  const size_t total = hl + caplen;
  if (avail() < total) {
    auto ok = Fill(total);
    if (!ok.ok()) return ok.status();
    if (!*ok) return Truncated(offset(), "record", total);
  }
  const std::span<const uint8_t> record = window().first(total);
  const Fields h(record, swapped_);
  const uint64_t sec = h.U32(0);
  const uint64_t frac = h.U32(4);
  const uint64_t ts = sec * kNsPerSec + (nanos_ ? frac : frac * 1000);
  Deliver(pkt, ts, true, h.U32(12), linktype_, record.subspan(hl));
  pos_ += total;
  return true;
}

absl::Status FileSource::ParseSectionHeader(std::span<const uint8_t> block) {
  if (block.size() < 28) {
    return Damage(offset(),
                  absl::StrCat("section header block too short (", block.size(), " bytes)"));
  }
  const Fields f(block, swapped_);
  const uint16_t major = f.U16(12);
  if (major != 1) {
    return Damage(offset(), absl::StrCat("unsupported pcapng version ", major, ".", f.U16(14)));
  }
  interfaces_.clear();
  seen_section_ = true;
  ++stats_.sections;
  return absl::OkStatus();
}

absl::Status FileSource::ParseInterface(std::span<const uint8_t> block) {
  if (block.size() < 20) {
    return Damage(offset(),
                  absl::StrCat("interface description block too short (", block.size(), " bytes)"));
  }
  const Fields f(block, swapped_);
  Interface itf;
  itf.linktype = f.U16(8);
  itf.snaplen = f.U32(12);
  size_t off = 16;
  const size_t opt_end = block.size() - 4;
  while (opt_end - off >= 4) {
    const uint16_t code = f.U16(off);
    const uint16_t len = f.U16(off + 2);
    off += 4;
    if (code == kOptEndOfOpt) break;
    const size_t padded = (size_t{len} + 3) & ~size_t{3};
    if (padded > opt_end - off) {
      return Damage(offset(), absl::StrCat("interface description option ", code, " of ", len,
                                           " bytes overruns its block"));
    }
    if (code == kOptIfTsresol && len >= 1) {
      const uint8_t v = block[off];
      if ((v & 0x80) != 0) {
        const uint32_t shift = v & 0x7fu;
        if (shift > 63) return Damage(offset(), absl::StrCat("if_tsresol 2^-", shift));
        itf.binary = true;
        itf.shift = shift;
      } else {
        if (v > 19) return Damage(offset(), absl::StrCat("if_tsresol 10^-", int{v}));
        itf.mul = v <= 9 ? Pow10(9u - v) : 1;
        itf.div = v <= 9 ? 1 : Pow10(v - 9u);
      }
    } else if (code == kOptIfTsoffset && len == 8) {
      itf.offset_ns = static_cast<int64_t>(f.U64(off)) * static_cast<int64_t>(kNsPerSec);
    }
    off += padded;
  }
  if (interfaces_.empty()) {
    linktype_ = itf.linktype;
    snaplen_ = itf.snaplen;
  }
  interfaces_.push_back(itf);
  return absl::OkStatus();
}

absl::StatusOr<bool> FileSource::NextPcapNg(RawPacket* pkt) {
  for (;;) {
    if (avail() < 12) {
      auto ok = Fill(12);
      if (!ok.ok()) return ok.status();
      if (!*ok) {
        if (avail() == 0) return false;
        return Truncated(offset(), "block header", 12);
      }
    }
    const std::span<const uint8_t> head = window().first(12);
    const auto raw_type = Load<uint32_t>(head, 0);
    if (raw_type == kBlockSectionHeader) {  // a palindrome: readable before the byte order
      const auto bom = Load<uint32_t>(head, 8);
      if (bom == kByteOrderMagic) {
        swapped_ = false;
      } else if (bom == Swap32(kByteOrderMagic)) {
        swapped_ = true;
      } else {
        return Damage(offset() + 8, "bad pcapng byte-order magic");
      }
    } else if (!seen_section_) {
      return Damage(offset(), "pcapng block before any section header");
    }
    const Fields fields(head, swapped_);
    const uint32_t type = fields.U32(0);
    const uint32_t total_len = fields.U32(4);
    if (total_len < 12 || total_len % 4 != 0) {
      return Damage(offset(), absl::StrCat("bad block length ", total_len, " (block type 0x",
                                           absl::Hex(type), ")"));
    }
    if (total_len > options_.max_block_bytes) {
      return Damage(offset(), absl::StrCat("block length ", total_len, " larger than the maximum ",
                                           options_.max_block_bytes, " (block type 0x",
                                           absl::Hex(type), ")"));
    }
    if (avail() < total_len) {
      auto ok = Fill(total_len);
      if (!ok.ok()) return ok.status();
      if (!*ok) return Truncated(offset(), "block", total_len);
    }
    const std::span<const uint8_t> block = window().first(total_len);
    const Fields b(block, swapped_);
    if (const uint32_t trailer = b.U32(total_len - 4); trailer != total_len) {
      return Damage(offset(), absl::StrCat("block trailer length ", trailer,
                                           " differs from its header's ", total_len));
    }

    switch (type) {
      case kBlockSectionHeader:
        if (absl::Status st = ParseSectionHeader(block); !st.ok()) return st;
        break;
      case kBlockInterface:
        if (absl::Status st = ParseInterface(block); !st.ok()) return st;
        break;
      case kBlockEnhancedPacket:
      case kBlockPacketObsolete: {
        if (total_len < 32) {
          return Damage(offset(), absl::StrCat("packet block too short (", total_len, " bytes)"));
        }
        const uint32_t if_id = type == kBlockEnhancedPacket ? b.U32(8) : b.U16(8);
        if (if_id >= interfaces_.size()) {
          return Damage(offset(), absl::StrCat("packet block for interface ", if_id, " but ",
                                               interfaces_.size(), " interfaces are described"));
        }
        const Interface& itf = interfaces_[if_id];
        const uint32_t caplen = b.U32(20);
        const uint32_t len = b.U32(24);
        if (caplen > CaplenLimit(itf.snaplen)) {
          return Damage(offset(), absl::StrCat("packet caplen ", caplen, " larger than ",
                                               CaplenLimit(itf.snaplen) != options_.max_packet_bytes
                                                   ? "the interface's snaplen "
                                                   : "the maximum ",
                                               CaplenLimit(itf.snaplen)));
        }
        if (caplen > total_len - 32) {
          return Damage(offset(), absl::StrCat("packet caplen ", caplen, " overruns its block of ",
                                               total_len, " bytes"));
        }
        const uint64_t units = (uint64_t{b.U32(12)} << 32) | b.U32(16);
        uint64_t ts = 0;
        if (itf.binary) {
          ts = static_cast<uint64_t>((static_cast<unsigned __int128>(units) * kNsPerSec) >>
                                     itf.shift);
        } else {
          ts = units * itf.mul / itf.div;
        }
        ts += static_cast<uint64_t>(itf.offset_ns);
        Deliver(pkt, ts, true, len, itf.linktype, block.subspan(28, caplen));
        pos_ += total_len;
        return true;
      }
      case kBlockSimplePacket: {
        if (total_len < 16) {
          return Damage(offset(),
                        absl::StrCat("simple packet block too short (", total_len, " bytes)"));
        }
        if (interfaces_.empty()) {
          return Damage(offset(), "simple packet block but no interface is described");
        }
        const Interface& itf = interfaces_[0];
        const uint32_t len = b.U32(8);
        uint32_t caplen = std::min(len, total_len - 16);
        if (itf.snaplen != 0) caplen = std::min(caplen, itf.snaplen);
        if (caplen > options_.max_packet_bytes) {
          return Damage(offset(),
                        absl::StrCat("simple packet length ", caplen, " larger than the maximum ",
                                     options_.max_packet_bytes));
        }
        Deliver(pkt, 0, false, len, itf.linktype, block.subspan(12, caplen));
        pos_ += total_len;
        return true;
      }
      default:
        ++stats_.skipped_blocks;
        break;
    }
    pos_ += total_len;
  }
}

}  // namespace pgtlsmon::capture
