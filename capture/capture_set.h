// capture/capture_set.h: many capture files (an archive of rotated, possibly compressed
// captures) read as one time-ordered capture.
//
// Inputs are files, directories (recursed; a file in a directory that is not a capture by
// content is skipped and counted), globs (expanded with glob(3) when the shell did not) and "-"
// (standard input). Open() reads the first packet's timestamp of every capture file and closes
// it again; the files are then taken in the order (first timestamp, path), whatever the order
// of the inputs. Next() yields one stream ordered by timestamp: a file is opened only when its
// first packet is due (its first timestamp is not after the earliest pending packet of the files
// already open), so files that follow each other in time are read one after the other, one open
// at a time, and files whose time ranges overlap are merged packet by packet (a k-way heap
// merge, as mergecap does; equal timestamps: the file earlier in the (first timestamp, path)
// order first; inside a file, the file's own order).
//
// Memory: per open file one FileSource buffer (FileSourceOptions::read_chunk_bytes, shrunk so
// that all open files together stay within CaptureSetOptions::buffer_budget_bytes, but never
// below 64 KiB) and, for compressed files, the decoder's window (zstd: up to 8 MiB at level 19,
// 2 MiB at the default level 3; xz: the dictionary, 8 MiB at the default -6), plus, while few
// files are open, 1 MiB of decompressed blocks a decompression thread fills ahead.
//
// Nothing stops the job: a file that cannot be opened, is damaged or is not a capture when
// named explicitly is recorded in stats().errors (its packets before the damage are delivered),
// and Next() goes on with the other files. Selection (--since/--until, --filter) is applied
// here, before the parser, and what it drops is counted.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "capture/file_source.h"
#include "capture/packet_source.h"

namespace pgtlsmon::capture {

struct CaptureSetOptions {
  FileSourceOptions file;  // for each file; read_chunk_bytes is the most an open file gets
  // All open files' read buffers together (the decoders' windows come on top).
  size_t buffer_budget_bytes = size_t{16} << 20;
  // Compressed files decompressed on a thread of their own, ahead of the parser, while at most
  // this many files are open (0: never). More overlapping files decompress inline.
  size_t decode_threads = 4;
  std::optional<uint64_t> since_ns;  // packets before it are dropped and counted
  std::optional<uint64_t> until_ns;  // packets at or after it are dropped and counted
  std::string filter;                // libpcap filter expression; empty: every packet
};

struct CaptureSetStats {
  uint64_t files_total = 0;        // capture files in the job (including empty ones)
  uint64_t files_done = 0;         // of them, read to their end (or their damage)
  uint64_t files_skipped = 0;      // in directories: not captures by content
  uint64_t files_empty = 0;        // captures without packets
  uint64_t files_after_until = 0;  // first packet at or after --until: not read
  uint64_t duplicates = 0;         // inputs naming a file already in the job: read once
  uint64_t bytes_total = 0;        // size of the capture files (compressed size)
  uint64_t packets = 0;            // packets read from the files
  uint64_t before_since = 0;       // dropped by --since
  uint64_t after_until = 0;        // dropped by --until
  uint64_t filtered_out = 0;       // dropped by --filter
  uint64_t caplen_over_len = 0;    // FileSourceStats of all files
  uint64_t ts_backwards = 0;
  size_t max_open = 0;  // most files open at the same time
  // One message per file that could not be read to its end: it names the file and, for
  // damage, the byte offset.
  std::vector<std::string> errors;
};

class CaptureSet final : public PacketSource {
 public:
  // Expands the inputs and reads each capture's first timestamp. Fails only when the filter
  // does not compile for Ethernet (a usage error: see ValidateFilter); input errors are in
  // stats().errors.
  static absl::StatusOr<std::unique_ptr<CaptureSet>> Open(const std::vector<std::string>& inputs,
                                                          const CaptureSetOptions& options = {});
  ~CaptureSet() override;
  CaptureSet(const CaptureSet&) = delete;
  CaptureSet& operator=(const CaptureSet&) = delete;

  // The next selected packet of the merged stream; false at the end of every input. Never an
  // error: errors are collected in stats().errors. `data` is valid until the next call.
  absl::StatusOr<bool> Next(RawPacket* pkt) override;

  const CaptureSetStats& stats() const { return stats_; }
  // Bytes read so far from all files (compressed bytes for compressed files), for progress.
  uint64_t bytes_done() const;
  // The capture files in reading order (first timestamp, path).
  std::vector<std::string> paths() const;

 private:
  struct Entry;
  struct Cursor;
  struct Filter;
  explicit CaptureSet(CaptureSetOptions options);

  void AddInput(const std::string& input);
  void AddFile(const std::string& path, bool explicit_name);
  void AddDirectory(const std::string& dir);
  void Scan(size_t entry);
  void OpenEntry(size_t entry);
  void Advance(Cursor* c);
  void Close(Cursor* c);
  void Push(Cursor* c);
  bool Selected(const RawPacket& pkt, const Cursor& c);
  static bool Later(const Cursor* a, const Cursor* b);

  CaptureSetOptions options_;
  std::vector<Entry> entries_;          // capture files, sorted by (first ts, path) after Open()
  std::map<std::string, size_t> seen_;  // canonical path -> entry: a file named twice is read once
  size_t next_entry_ = 0;
  std::vector<Cursor*> heap_;                  // open files with a pending packet
  std::vector<std::unique_ptr<Cursor>> open_;  // owns the open cursors
  Cursor* last_ = nullptr;                     // handed out by the previous Next()
  uint64_t closed_bytes_ = 0;
  std::unique_ptr<Filter> filter_;
  CaptureSetStats stats_;
};

// Checks that `expr` compiles as a libpcap filter (for Ethernet); the error is libpcap's text.
absl::Status ValidateFilter(const std::string& expr);

// Parses a --since/--until value: RFC 3339 ("2026-03-01T00:00:00Z", "...+02:00", fractions
// allowed) or seconds since the epoch with an optional fraction ("1772323200.5"). Returns
// nanoseconds since the epoch.
absl::StatusOr<uint64_t> ParseTimeArg(std::string_view text);

}  // namespace pgtlsmon::capture
