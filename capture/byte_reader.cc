// capture/byte_reader.cc: see byte_reader.h.
#include "capture/byte_reader.h"

#include <lzma.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace pgtlsmon::capture {
namespace {

constexpr size_t kSniffBytes = 6;
constexpr uint8_t kGzipMagic[] = {0x1f, 0x8b};
constexpr uint8_t kZstdMagic[] = {0x28, 0xb5, 0x2f, 0xfd};
constexpr uint8_t kXzMagic[] = {0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00};

template <size_t N>
bool StartsWith(std::span<const uint8_t> bytes, const uint8_t (&magic)[N]) {
  return bytes.size() >= N && std::memcmp(bytes.data(), magic, N) == 0;
}

// read(2) until `out` is full or the input ends; retries EINTR.
absl::StatusOr<size_t> ReadFull(int fd, std::span<uint8_t> out, const std::string& path) {
  size_t got = 0;
  while (got < out.size()) {
    const std::span<uint8_t> rest = out.subspan(got);
    const ssize_t r = ::read(fd, rest.data(), rest.size());
    if (r < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, absl::StrCat("read ", path));
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

class FdOwner {
 public:
  explicit FdOwner(int fd) : fd_(fd) {}
  ~FdOwner() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdOwner(const FdOwner&) = delete;
  FdOwner& operator=(const FdOwner&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// An uncompressed file: the sniffed bytes first, then read(2) straight into the caller's buffer.
class PlainReader final : public ByteReader {
 public:
  PlainReader(int fd, std::string path, const uint8_t* prefix, size_t prefix_len)
      : fd_(fd), path_(std::move(path)), prefix_len_(prefix_len) {
    std::memcpy(prefix_, prefix, prefix_len);
    raw_read_ = prefix_len;
  }
  absl::StatusOr<size_t> Read(uint8_t* dst, size_t n) override {
    if (n == 0) return size_t{0};
    if (prefix_pos_ < prefix_len_) {
      const size_t k = std::min(n, prefix_len_ - prefix_pos_);
      std::memcpy(dst, std::span(prefix_).subspan(prefix_pos_).data(), k);
      prefix_pos_ += k;
      return k;
    }
    for (;;) {
      const ssize_t r = ::read(fd_.get(), dst, std::min(n, size_t{1} << 30));
      if (r >= 0) {
        raw_read_ += static_cast<uint64_t>(r);
        return static_cast<size_t>(r);
      }
      if (errno != EINTR) return absl::ErrnoToStatus(errno, absl::StrCat("read ", path_));
    }
  }
  Compression compression() const override { return Compression::kNone; }

 private:
  FdOwner fd_;
  std::string path_;
  uint8_t prefix_[kSniffBytes] = {};
  size_t prefix_len_;
  size_t prefix_pos_ = 0;
};

// What the three decoders share: the compressed input buffer, the sticky error, and the loop
// that decodes until the caller's buffer is full or the input ends.
class DecoderReader : public ByteReader {
 public:
  DecoderReader(int fd, std::string path, const uint8_t* prefix, size_t prefix_len,
                const ByteReaderOptions& options)
      : fd_(fd),
        path_(std::move(path)),
        in_cap_(std::max(options.input_block_bytes, size_t{4096})),
        in_(std::make_unique_for_overwrite<uint8_t[]>(in_cap_)) {
    std::memcpy(in_.get(), prefix, prefix_len);
    in_end_ = prefix_len;
    raw_read_ = prefix_len;
  }

  absl::StatusOr<size_t> Read(uint8_t* dst, size_t n) override {
    if (!error_.ok()) return error_;
    size_t produced = 0;
    while (produced < n && !finished_) {
      if (in_pos_ == in_end_ && !eof_) {
        absl::Status st = Refill();
        if (!st.ok()) {
          error_ = std::move(st);
          break;
        }
      }
      const size_t in_before = in_pos_;
      const size_t out_before = produced;
      absl::Status st = Step(std::span(dst, n).subspan(produced), &produced);
      if (!st.ok()) {
        error_ = std::move(st);
        break;
      }
      if (in_pos_ == in_before && produced == out_before && in_pos_ == in_end_ && eof_) {
        // Nothing left to read and the decoder made no progress: the end of the input.
        if (!StreamComplete()) {
          error_ = Damaged(out_total_ + produced, "stream ends early");
        }
        finished_ = true;
      }
    }
    out_total_ += produced;
    if (produced > 0) return produced;  // an error is returned by the next call
    if (!error_.ok()) return error_;
    return size_t{0};
  }

 protected:
  // Decodes from input() into `out` (the caller's free space), advancing in_pos_ and adding
  // the bytes written to *produced (the caller's count, which damage offsets include).
  virtual absl::Status Step(std::span<uint8_t> out, size_t* produced) = 0;
  // True when the input ended at a stream boundary (not in the middle of a frame/member).
  virtual bool StreamComplete() const = 0;

  absl::Status Damaged(uint64_t out_offset, absl::string_view what) const {
    return absl::DataLossError(absl::StrCat(path_, ": ", CompressionName(compression()), " ", what,
                                            " after ", raw_read_,
                                            " compressed bytes, at "
                                            "offset ",
                                            out_offset, " of the decompressed stream"));
  }

  // The compressed bytes not decoded yet.
  std::span<uint8_t> input() const { return std::span(in_.get(), in_end_).subspan(in_pos_); }

  // Moves input() to the front of the buffer and reads from the descriptor into the rest
  // (until it is full, or the input ends: then eof_).
  absl::Status Refill() {
    const std::span<uint8_t> buffer(in_.get(), in_cap_);
    std::ranges::copy(input(), buffer.begin());  // to the front: copy() allows the overlap
    in_end_ -= in_pos_;
    in_pos_ = 0;
    const std::span<uint8_t> free = buffer.subspan(in_end_);
    auto got = ReadFull(fd_.get(), free, path_);
    if (!got.ok()) return got.status();
    raw_read_ += *got;
    if (*got < free.size()) eof_ = true;
    in_end_ += *got;
    return absl::OkStatus();
  }

  FdOwner fd_;
  std::string path_;
  size_t in_cap_;
  std::unique_ptr<uint8_t[]> in_;
  size_t in_pos_ = 0;
  size_t in_end_ = 0;
  bool eof_ = false;       // the descriptor has no more bytes
  bool finished_ = false;  // the decoder has nothing more either
  uint64_t out_total_ = 0;
  absl::Status error_;
};

// gzip: zlib's inflate, one member after the other; bytes after a member that do not start
// another member are ignored (as gzip -d and zlib's gzread do).
class GzipReader final : public DecoderReader {
 public:
  using DecoderReader::DecoderReader;
  ~GzipReader() override {
    if (init_) inflateEnd(&zs_);
  }
  GzipReader(const GzipReader&) = delete;
  GzipReader& operator=(const GzipReader&) = delete;
  absl::Status Init() {
    if (inflateInit2(&zs_, 15 + 16) != Z_OK) {
      return absl::ResourceExhaustedError(absl::StrCat(path_, ": inflateInit2 failed"));
    }
    init_ = true;
    return absl::OkStatus();
  }
  Compression compression() const override { return Compression::kGzip; }

 protected:
  absl::Status Step(std::span<uint8_t> out, size_t* produced) override {
    if (between_members_) {
      if (in_pos_ == in_end_) return absl::OkStatus();  // more input, or the end
      if (in_end_ - in_pos_ < 2 && !eof_) {
        // Too little to tell whether another member starts: keep the byte, read more.
        return Refill();
      }
      if (!StartsWith(input(), kGzipMagic)) {
        in_pos_ = in_end_;  // trailing garbage: ignored
        eof_ = true;
        return absl::OkStatus();
      }
      inflateReset(&zs_);
      between_members_ = false;
    }
    zs_.next_in = input().data();
    zs_.avail_in = static_cast<uInt>(std::min<size_t>(input().size(), 1u << 30));
    zs_.next_out = out.data();
    zs_.avail_out = static_cast<uInt>(std::min<size_t>(out.size(), 1u << 30));
    const uInt in_before = zs_.avail_in;
    const uInt out_before = zs_.avail_out;
    const int rc = inflate(&zs_, Z_NO_FLUSH);
    in_pos_ += in_before - zs_.avail_in;
    *produced += out_before - zs_.avail_out;
    if (rc == Z_STREAM_END) {
      between_members_ = true;
      return absl::OkStatus();
    }
    if (rc == Z_OK || rc == Z_BUF_ERROR) return absl::OkStatus();
    return Damaged(
        out_total_ + *produced,
        absl::StrCat("data error (", zs_.msg != nullptr ? zs_.msg : "inflate failed", ")"));
  }
  bool StreamComplete() const override { return between_members_; }

 private:
  z_stream zs_{};
  bool init_ = false;
  bool between_members_ = false;
};

// zstd: ZSTD_decompressStream; frames follow each other (skippable frames are skipped).
class ZstdReader final : public DecoderReader {
 public:
  using DecoderReader::DecoderReader;
  ~ZstdReader() override { ZSTD_freeDStream(ds_); }
  ZstdReader(const ZstdReader&) = delete;
  ZstdReader& operator=(const ZstdReader&) = delete;
  absl::Status Init() {
    ds_ = ZSTD_createDStream();
    if (ds_ == nullptr) {
      return absl::ResourceExhaustedError(absl::StrCat(path_, ": ZSTD_createDStream failed"));
    }
    return absl::OkStatus();
  }
  Compression compression() const override { return Compression::kZstd; }

 protected:
  absl::Status Step(std::span<uint8_t> out, size_t* produced) override {
    ZSTD_inBuffer in{input().data(), input().size(), 0};
    ZSTD_outBuffer dst{out.data(), out.size(), 0};
    const size_t rc = ZSTD_decompressStream(ds_, &dst, &in);
    in_pos_ += in.pos;
    *produced += dst.pos;
    if (ZSTD_isError(rc) != 0) {
      return Damaged(out_total_ + *produced,
                     absl::StrCat("data error (", ZSTD_getErrorName(rc), ")"));
    }
    // With no input and nothing to flush, zstd answers a hint for the next frame's header:
    // only a call that did something says where the stream is.
    if (in.pos > 0 || dst.pos > 0) frame_done_ = rc == 0;
    return absl::OkStatus();
  }
  bool StreamComplete() const override { return frame_done_; }

 private:
  ZSTD_DStream* ds_ = nullptr;
  bool frame_done_ = true;
};

// xz: liblzma's .xz decoder, concatenated streams allowed.
class XzReader final : public DecoderReader {
 public:
  using DecoderReader::DecoderReader;
  ~XzReader() override { lzma_end(&strm_); }
  XzReader(const XzReader&) = delete;
  XzReader& operator=(const XzReader&) = delete;
  absl::Status Init() {
    if (lzma_stream_decoder(&strm_, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK) {
      return absl::ResourceExhaustedError(absl::StrCat(path_, ": lzma_stream_decoder failed"));
    }
    return absl::OkStatus();
  }
  Compression compression() const override { return Compression::kXz; }

 protected:
  absl::Status Step(std::span<uint8_t> out, size_t* produced) override {
    if (done_) return absl::OkStatus();
    strm_.next_in = input().data();
    strm_.avail_in = input().size();
    strm_.next_out = out.data();
    strm_.avail_out = out.size();
    const size_t in_before = strm_.avail_in;
    const size_t out_before = strm_.avail_out;
    const bool last = eof_ && in_pos_ == in_end_;
    const lzma_ret rc = lzma_code(&strm_, eof_ ? LZMA_FINISH : LZMA_RUN);
    in_pos_ += in_before - strm_.avail_in;
    *produced += out_before - strm_.avail_out;
    switch (rc) {
      case LZMA_OK:
        return absl::OkStatus();
      case LZMA_STREAM_END:
        done_ = true;
        return absl::OkStatus();
      case LZMA_BUF_ERROR:
        // No progress possible: with all input given, the stream was cut short.
        if (last) return Damaged(out_total_ + *produced, "stream ends early");
        return absl::OkStatus();
      case LZMA_MEM_ERROR:
      case LZMA_MEMLIMIT_ERROR:
        return absl::ResourceExhaustedError(absl::StrCat(path_, ": xz decoder out of memory"));
      default:
        return Damaged(out_total_ + *produced,
                       absl::StrCat("data error (lzma code ", static_cast<int>(rc), ")"));
    }
  }
  bool StreamComplete() const override { return done_; }

 private:
  lzma_stream strm_ = LZMA_STREAM_INIT;
  bool done_ = false;
};

// Runs another reader on a thread of its own: the thread fills blocks of decompressed bytes
// ahead of the caller (at most `blocks` of them), Read() copies out of the oldest one. The
// inner reader's end, error and position travel with the blocks.
class ThreadedReader final : public ByteReader {
 public:
  ThreadedReader(std::unique_ptr<ByteReader> inner, size_t block_bytes, size_t blocks)
      : inner_(std::move(inner)), block_bytes_(std::max(block_bytes, size_t{4096})) {
    for (size_t i = 0; i < std::max(blocks, size_t{2}); ++i) {
      free_.push_back(std::make_unique_for_overwrite<uint8_t[]>(block_bytes_));
    }
    thread_ = std::thread([this] { Produce(); });
  }
  ~ThreadedReader() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  ThreadedReader(const ThreadedReader&) = delete;
  ThreadedReader& operator=(const ThreadedReader&) = delete;

  absl::StatusOr<size_t> Read(uint8_t* dst, size_t n) override {
    if (n == 0) return size_t{0};
    if (cur_pos_ == cur_len_) {
      std::unique_lock<std::mutex> lock(mu_);
      if (cur_) free_.push_back(std::move(cur_));
      cv_.notify_all();
      cv_.wait(lock, [this] { return !filled_.empty() || done_; });
      if (filled_.empty()) {  // the producer ended: its status says how
        if (!end_status_.ok()) return end_status_;
        return size_t{0};
      }
      Block b = std::move(filled_.front());
      filled_.pop_front();
      cur_ = std::move(b.data);
      cur_len_ = b.len;
      cur_pos_ = 0;
      consumed_raw_ = b.raw_read;
    }
    const size_t k = std::min(n, cur_len_ - cur_pos_);
    std::memcpy(dst, cur_.get() + cur_pos_, k);
    cur_pos_ += k;
    return k;
  }
  Compression compression() const override { return inner_->compression(); }
  // Compressed bytes behind what the caller has been handed (not what the thread has read).
  uint64_t raw_bytes_read() const override { return consumed_raw_; }

 private:
  struct Block {
    std::unique_ptr<uint8_t[]> data;
    size_t len = 0;
    uint64_t raw_read = 0;
  };

  void Produce() {
    for (;;) {
      std::unique_ptr<uint8_t[]> buf;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !free_.empty(); });
        if (stop_) return;
        buf = std::move(free_.back());
        free_.pop_back();
      }
      size_t len = 0;
      absl::Status st;
      bool end = false;
      while (len < block_bytes_) {
        auto got = inner_->Read(buf.get() + len, block_bytes_ - len);
        if (!got.ok()) {
          st = got.status();
          break;
        }
        if (*got == 0) {
          end = true;
          break;
        }
        len += *got;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (len > 0) filled_.push_back({std::move(buf), len, inner_->raw_bytes_read()});
        if (!st.ok() || end) {
          end_status_ = st;
          done_ = true;
        }
      }
      cv_.notify_all();
      if (!st.ok() || end) return;
    }
  }

  std::unique_ptr<ByteReader> inner_;  // used by the thread only (compression() is constant)
  size_t block_bytes_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  // Guarded by mu_:
  std::vector<std::unique_ptr<uint8_t[]>> free_;
  std::deque<Block> filled_;
  bool done_ = false;
  bool stop_ = false;
  absl::Status end_status_;
  // The caller's:
  std::unique_ptr<uint8_t[]> cur_;
  size_t cur_len_ = 0;
  size_t cur_pos_ = 0;
  uint64_t consumed_raw_ = 0;
};

template <typename R>
absl::StatusOr<std::unique_ptr<ByteReader>> Make(int fd, const std::string& path,
                                                 const uint8_t* prefix, size_t len,
                                                 const ByteReaderOptions& options) {
  auto r = std::make_unique<R>(fd, path, prefix, len, options);
  if (absl::Status st = r->Init(); !st.ok()) return st;
  if (options.decompress_in_thread) {
    return std::unique_ptr<ByteReader>(std::make_unique<ThreadedReader>(
        std::move(r), options.decode_block_bytes, options.decode_blocks));
  }
  return std::unique_ptr<ByteReader>(std::move(r));
}

}  // namespace

absl::string_view CompressionName(Compression c) {
  switch (c) {
    case Compression::kNone:
      return "none";
    case Compression::kGzip:
      return "gzip";
    case Compression::kZstd:
      return "zstd";
    case Compression::kXz:
      return "xz";
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<ByteReader>> OpenByteReader(int fd, const std::string& path,
                                                           const ByteReaderOptions& options) {
  uint8_t prefix[kSniffBytes];
  auto got = ReadFull(fd, prefix, path);
  if (!got.ok()) {
    ::close(fd);
    return got.status();
  }
  const size_t len = *got;
  const std::span<const uint8_t> head = std::span(prefix).first(len);
  if (StartsWith(head, kGzipMagic)) return Make<GzipReader>(fd, path, prefix, len, options);
  if (StartsWith(head, kZstdMagic)) return Make<ZstdReader>(fd, path, prefix, len, options);
  if (StartsWith(head, kXzMagic)) return Make<XzReader>(fd, path, prefix, len, options);
  return std::unique_ptr<ByteReader>(std::make_unique<PlainReader>(fd, path, prefix, len));
}

}  // namespace pgtlsmon::capture
