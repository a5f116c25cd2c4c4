// capture/byte_reader.h: the byte input under FileSource: a file or pipe, read as it is or
// decompressed on the fly (gzip, zstd, xz), the format recognised by the first bytes, never
// unpacked to disk.
//
// OpenByteReader() reads the first bytes of the descriptor, picks the decoder by their magic
// (gzip 1f 8b, zstd 28 b5 2f fd, xz fd 37 7a 58 5a 00; anything else is read as it is) and hands
// those bytes to it, so standard input and other pipes work like files. Each decoder reads the
// compressed input in blocks of its own and decompresses straight into the caller's buffer.
//
// Concatenated streams (several gzip members, zstd frames or xz streams) are one stream, as
// `zcat`, `zstdcat` and `xzcat` read them. Damage (corrupt data, a stream cut short) is an
// error naming the path and the offset in the decompressed stream; every byte decompressed
// before it has been returned by earlier reads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pgtlsmon::capture {

enum class Compression : uint8_t { kNone, kGzip, kZstd, kXz };

// "none", "gzip", "zstd", "xz".
absl::string_view CompressionName(Compression c);

class ByteReader {
 public:
  virtual ~ByteReader() = default;
  // Reads up to n bytes into dst; 0 at the end of the (decompressed) stream.
  virtual absl::StatusOr<size_t> Read(uint8_t* dst, size_t n) = 0;
  virtual Compression compression() const = 0;
  // Bytes consumed from the file so far (compressed bytes for a compressed file).
  virtual uint64_t raw_bytes_read() const { return raw_read_; }

 protected:
  uint64_t raw_read_ = 0;
};

struct ByteReaderOptions {
  // Compressed bytes read from the descriptor at a time (per open file: with many files open
  // at once the caller makes it smaller).
  size_t input_block_bytes = size_t{256} << 10;
  // Decompress on a thread of its own, ahead of the reader (compressed input only), so that
  // decompression overlaps the caller's parsing. Costs the thread and decode_blocks of
  // decode_block_bytes of decompressed data per open file.
  bool decompress_in_thread = false;
  size_t decode_block_bytes = size_t{256} << 10;
  size_t decode_blocks = 4;
};

// Takes ownership of `fd` (closed by the reader, also on error). `path` names the input in
// errors.
absl::StatusOr<std::unique_ptr<ByteReader>> OpenByteReader(int fd, const std::string& path,
                                                           const ByteReaderOptions& options = {});

}  // namespace pgtlsmon::capture
