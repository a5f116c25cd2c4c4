#include "app/replay.h"

#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "app/pipeline.h"
#include "app/what_if.h"
#include "capture/capture_set.h"
#include "exporter/metrics.h"
#include "exporter/record_json.h"
#include "exporter/table_report.h"
#include "fmt/core.h"
#include "fmt/format.h"
#include "parser/text.h"

namespace pgtlsmon::app {
namespace {

using Clock = std::chrono::steady_clock;

// Buffered writes to a FILE*, so a record costs a memcpy and not a system call. Also sees
// errors of what others wrote to the same FILE* (the table report).
class OutputBuffer {
 public:
  explicit OutputBuffer(FILE* f) : f_(f) { buf_.reserve(kFlushAt + 4096); }
  std::string* buf() { return &buf_; }
  void MaybeFlush() {
    if (buf_.size() >= kFlushAt) Flush();
  }
  // False once any write failed; error() is its errno.
  bool Flush() {
    if (!buf_.empty() && std::fwrite(buf_.data(), 1, buf_.size(), f_) != buf_.size()) Fail();
    buf_.clear();
    if (std::fflush(f_) != 0) Fail();
    if (std::ferror(f_) != 0) Fail();  // an earlier write by someone else
    return error_ == 0;
  }
  int error() const { return error_; }

 private:
  void Fail() {
    if (error_ == 0) error_ = errno != 0 ? errno : EIO;
  }
  static constexpr size_t kFlushAt = 1 << 20;
  FILE* f_;
  std::string buf_;
  int error_ = 0;
};

// Where the job is: what a reader publishes for the progress line.
struct ProgressSnapshot {
  uint64_t files_done = 0;
  uint64_t files_total = 0;
  uint64_t bytes_done = 0;   // compressed bytes for compressed files
  uint64_t bytes_total = 0;  // 0 when unknown (standard input)
  uint64_t packets = 0;
};

ProgressSnapshot Snapshot(const capture::CaptureSet& set, uint64_t packets) {
  const capture::CaptureSetStats& st = set.stats();
  return {st.files_done, st.files_total, set.bytes_done(), st.bytes_total, packets};
}

// One progress line on stderr, rewritten in place: files done/total, bytes done/total, rate,
// ETA. Shown when stderr is a terminal (unless --no-progress) or when --progress forces it.
class Progress {
 public:
  // `check_every`: calls between two looks at the clock (a power of two).
  explicit Progress(const ReplayOptions& opts, uint64_t check_every = 0x4000)
      : enabled_(opts.force_progress || (opts.progress && isatty(STDERR_FILENO) == 1)),
        mask_(check_every - 1) {}
  bool enabled() const { return enabled_; }
  void Update(const ProgressSnapshot& p, uint64_t sessions) {
    if (!enabled_ || (++calls_ & mask_) != 0) return;
    const auto now = Clock::now();
    if (now - last_ < std::chrono::milliseconds(500)) return;
    last_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double rate = secs > 0 ? static_cast<double>(p.bytes_done) / secs : 0;
    std::string eta = "?";
    if (p.bytes_total > 0 && p.bytes_done > 0 && rate > 0) {
      eta = fmt::format(
          "{:.0f}s",
          static_cast<double>(p.bytes_total - std::min(p.bytes_done, p.bytes_total)) / rate);
    }
    fmt::print(stderr,
               "\rfiles {}/{}, {:.0f}/{:.0f} MB, {:.1f} MB/s, {} packets, {} sessions, ETA {}   ",
               p.files_done, p.files_total, static_cast<double>(p.bytes_done) / 1e6,
               static_cast<double>(p.bytes_total) / 1e6, rate / 1e6, p.packets, sessions, eta);
    shown_ = true;
  }
  void Done() {
    if (shown_) fmt::print(stderr, "\r{:100}\r", "");
  }

 private:
  bool enabled_;
  uint64_t mask_;
  bool shown_ = false;
  uint64_t calls_ = 0;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_ = start_;
};

// What one pass over the captures counted about the files (the pipeline counts the packets).
struct ReadTotals {
  uint64_t caplen_over_len = 0;  // odd but readable records (capture::FileSourceStats)
  uint64_t ts_backwards = 0;
  capture::CaptureSetStats files;  // files read, skipped, damaged; packets selected out
  int rc = 0;
};

capture::CaptureSetOptions CaptureOptions(const ReplayOptions& opts) {
  capture::CaptureSetOptions co;
  co.since_ns = opts.since_ns;
  co.until_ns = opts.until_ns;
  co.filter = opts.filter;
  return co;
}

// Reads every capture as one time-ordered stream (capture::CaptureSet: files, directories and
// globs; rotated files one after the other, overlapping ones merged by timestamp) and hands
// each packet to `on_packet`; progress(const CaptureSet&, packets so far) follows each packet.
// Errors (damaged files, ...) end up in totals->files.errors and make totals->rc 1; the job
// goes on. Both callbacks are templates: no indirect call per packet.
template <typename ProgressFn, typename OnPacket>
void ReadCaptures(const ReplayOptions& opts, ReadTotals* totals, ProgressFn&& progress,
                  OnPacket&& on_packet) {
  auto set = capture::CaptureSet::Open(opts.captures, CaptureOptions(opts));
  if (!set.ok()) {  // the filter; main() validated it already
    fmt::print(stderr, "pgtlsmon: {}\n", std::string(set.status().message()));
    totals->rc = 1;
    return;
  }
  capture::CaptureSet& input = **set;
  uint64_t packets = 0;
  capture::RawPacket pkt;
  while (true) {
    auto more = input.Next(&pkt);
    if (!more.ok() || !*more) break;  // CaptureSet::Next keeps its errors in stats()
    on_packet(pkt);
    progress(input, ++packets);
  }
  totals->files = input.stats();
  totals->caplen_over_len = totals->files.caplen_over_len;
  totals->ts_backwards = totals->files.ts_backwards;
  if (!totals->files.errors.empty()) totals->rc = 1;
}

// --threads: 0 (the default) is the cores this process may run on.
size_t ReplayThreads(int requested) {
  if (requested > 0) return static_cast<size_t>(requested);
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) {
    return static_cast<size_t>(CPU_COUNT(&set));
  }
  return std::max<size_t>(std::thread::hardware_concurrency(), 1);
}

// The job's summary on stderr: files read, skipped (not captures), damaged (with the message
// naming the file and offset), and the packets --since/--until/--filter left out. One line,
// plus one per error; nothing when a single file was read with nothing to say.
void ReportFiles(const ReplayOptions& opts, const capture::CaptureSetStats& st) {
  const bool selecting = opts.since_ns || opts.until_ns || !opts.filter.empty();
  if (st.files_total <= 1 && st.files_skipped == 0 && st.errors.empty() && !selecting &&
      st.duplicates == 0) {
    return;
  }
  std::vector<std::string> parts;
  parts.push_back(
      fmt::format("{} capture file{} read ({:.1f} MB{})", st.files_done,
                  st.files_done == 1 ? "" : "s", static_cast<double>(st.bytes_total) / 1e6,
                  st.max_open > 1 ? fmt::format(", up to {} merged at once", st.max_open) : ""));
  if (st.files_empty > 0) parts.push_back(fmt::format("{} without packets", st.files_empty));
  if (st.files_skipped > 0) {
    parts.push_back(fmt::format("{} file{} in directories skipped (not captures)", st.files_skipped,
                                st.files_skipped == 1 ? "" : "s"));
  }
  if (st.duplicates > 0) parts.push_back(fmt::format("{} named twice, read once", st.duplicates));
  if (!st.errors.empty()) {
    parts.push_back(fmt::format("{} with errors (below)", st.errors.size()));
  }
  if (selecting) {
    std::string sel = fmt::format("{} packets read", st.packets);
    if (opts.since_ns) sel += fmt::format(", {} before --since", st.before_since);
    if (opts.until_ns) {
      sel += fmt::format(", {} at or after --until", st.after_until);
      if (st.files_after_until > 0) {
        sel += fmt::format(" (and {} files starting after it not read)", st.files_after_until);
      }
    }
    if (!opts.filter.empty()) sel += fmt::format(", {} not matching --filter", st.filtered_out);
    parts.push_back(sel);
  }
  fmt::print(stderr, "pgtlsmon: {}\n", fmt::join(parts, "; "));
  for (const std::string& e : st.errors) fmt::print(stderr, "pgtlsmon: {}\n", e);
}

// One line on stderr when anything was lost or odd (nothing is dropped silently): what was
// counted but not turned into records.
void ReportUnused(const exporter::PipelineStats& ps, const ReadTotals& read) {
  std::vector<std::string> notes;
  for (size_t st = 0; st < static_cast<size_t>(parser::Stage::kCount); ++st) {
    for (size_t re = 0; re < static_cast<size_t>(parser::Reason::kCount); ++re) {
      if (const uint64_t n = ps.parse.counts[st][re]; n > 0) {
        notes.push_back(fmt::format("{} {}/{}", n,
                                    parser::StageName(static_cast<parser::Stage>(st)),
                                    parser::ReasonName(static_cast<parser::Reason>(re))));
      }
    }
  }
  for (const auto& [reason, n] : ps.evictions) {
    if (n > 0) notes.push_back(fmt::format("{} connections evicted ({})", n, reason));
  }
  if (read.caplen_over_len > 0) {
    notes.push_back(fmt::format("{} records with caplen > len", read.caplen_over_len));
  }
  if (read.ts_backwards > 0) {
    notes.push_back(fmt::format("{} timestamps going backwards", read.ts_backwards));
  }
  if (!notes.empty()) {
    fmt::print(stderr, "pgtlsmon: input that could not be used (counted in the metrics): {}\n",
               fmt::join(notes, ", "));
  }
}

}  // namespace

int RunReplay(const ReplayOptions& opts) {
  FILE* out = stdout;
  std::unique_ptr<FILE, int (*)(FILE*)> out_file(nullptr, &std::fclose);
  if (!opts.output.empty() && opts.output != "-") {
    out_file.reset(std::fopen(opts.output.c_str(), "w"));
    if (!out_file) {
      fmt::print(stderr, "pgtlsmon: cannot write {}: {}\n", opts.output, parser::ErrnoText(errno));
      return 1;
    }
    out = out_file.get();
  }
  const bool jsonl = opts.format == "jsonl";
  OutputBuffer output(out);
  std::optional<exporter::TableReport> table;
  if (!jsonl) {
    exporter::TableReport::Options to;
    if (opts.what_if) {
      to.what_if_policies = PolicySummaries(*opts.what_if);
      to.what_if_security_level = opts.what_if->security_level();
    }
    table.emplace(out, to);
  }

  std::unique_ptr<exporter::Metrics> metrics;
  if (!opts.metrics_file.empty()) {
    exporter::Metrics::Options mo;
    mo.capture = "replay";
    mo.max_clients = opts.max_clients;
    metrics = std::make_unique<exporter::Metrics>(mo);
  }

  uint64_t records = 0;
  const auto on_record = [&](parser::SessionRecord&& r) {
    ++records;
    if (opts.what_if) opts.what_if->Annotate(&r);
    if (metrics) metrics->OnRecord(r);
    if (jsonl) {
      exporter::AppendRecordJson(r, output.buf());
      output.MaybeFlush();
    } else {
      table->OnRecord(r);
    }
  };

  const size_t threads = ReplayThreads(opts.threads);

  ReadTotals read;
  exporter::PipelineStats ps;
  capture::LiveStats source;  // files have no drops of their own
  source.source = "replay";
  Progress progress(opts);
  const auto on_progress = [&](const capture::CaptureSet& set, uint64_t packets) {
    if (progress.enabled()) progress.Update(Snapshot(set, packets), records);
  };
  if (threads == 1) {
    // The single-threaded path: no queue, no copy.
    Pipeline pipeline(opts.tracker, on_record);
    ReadCaptures(opts, &read, on_progress,
                 [&pipeline](const capture::RawPacket& pkt) { pipeline.OnPacket(pkt); });
    pipeline.Finish();
    progress.Done();
    const parser::FlowTracker* trackers[] = {&pipeline.tracker()};
    ps = CollectStats(source, pipeline.input(), trackers);
  } else {
    // This thread reads and decodes; `threads` workers track the connections (ShardedPipeline).
    ShardedPipeline sharded(opts.tracker, threads, on_record);
    ReadCaptures(opts, &read, on_progress,
                 [&sharded](const capture::RawPacket& pkt) { sharded.OnPacket(pkt); });
    sharded.Finish();
    progress.Done();
    std::vector<const parser::FlowTracker*> trackers;
    for (size_t i = 0; i < sharded.size(); ++i) trackers.push_back(&sharded.tracker(i));
    ps = CollectStats(source, sharded.input(), trackers);
  }
  int rc = read.rc;

  if (table) table->Finish();
  if (opts.what_if) {
    const whatif::EngineStats st = opts.what_if->stats();
    fmt::print(stderr,
               "pgtlsmon: --what-if: {} connections with a ClientHello, {} policies; OpenSSL "
               "asked {} times (distinct hello shapes), {} answers from the cache\n",
               st.predictions, opts.what_if->policies().size(), st.cache_misses, st.cache_hits);
  }
  bool written = output.Flush();
  if (out_file) written = std::fclose(out_file.release()) == 0 && written;
  if (!written) {
    fmt::print(stderr, "pgtlsmon: writing {}: {}\n",
               opts.output.empty() || opts.output == "-" ? "stdout" : opts.output,
               parser::ErrnoText(output.error() != 0 ? output.error() : errno));
    rc = 1;
  }
  ReportFiles(opts, read.files);
  ReportUnused(ps, read);
  if (metrics) {
    metrics->SetStatsProvider([ps] { return ps; });
    if (auto st = metrics->WriteTextFile(opts.metrics_file); !st.ok()) {
      fmt::print(stderr, "pgtlsmon: {}\n", std::string(st.message()));
      rc = 1;
    }
  }
  return rc;
}

}  // namespace pgtlsmon::app
