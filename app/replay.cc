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
#include "capture/open_capture.h"
#include "exporter/metrics.h"
#include "exporter/record_json.h"
#include "exporter/table_report.h"
#include "fmt/core.h"
#include "fmt/format.h"

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

// Progress on stderr (only when it is a terminal): packets, MB, sessions, ETA.
class Progress {
 public:
  // `check_every`: calls between two looks at the clock (a power of two).
  explicit Progress(bool enabled, uint64_t check_every = 0x4000)
      : enabled_(enabled && isatty(STDERR_FILENO) == 1), mask_(check_every - 1) {}
  void Update(const std::string& name, uint64_t done, uint64_t total, uint64_t packets,
              uint64_t sessions) {
    if (!enabled_ || (++calls_ & mask_) != 0) return;
    const auto now = Clock::now();
    if (now - last_ < std::chrono::milliseconds(500)) return;
    last_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    std::string eta = "?";
    if (total > 0 && done > 0 && secs > 0) {
      const double rate = static_cast<double>(done) / secs;
      eta = fmt::format("{:.0f}s", static_cast<double>(total - std::min(done, total)) / rate);
    }
    fmt::print(stderr, "\r{}: {:.0f}% {} packets, {:.0f} MB, {} sessions, ETA {}   ", name,
               total ? 100.0 * static_cast<double>(done) / static_cast<double>(total) : 0.0,
               packets, static_cast<double>(done) / 1e6, sessions, eta);
    shown_ = true;
  }
  void Done() {
    if (shown_) fmt::print(stderr, "\r{:80}\r", "");
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
  int rc = 0;
};

// Reads every capture in order and hands each packet to `on_packet` with its index among all
// packets of all captures. `report` (one reader of several only) prints errors and feeds the
// progress counters. Both callbacks are templates: no indirect call per packet.
template <typename ProgressFn, typename OnPacket>
void ReadCaptures(const ReplayOptions& opts, bool report, ReadTotals* totals, ProgressFn&& progress,
                  OnPacket&& on_packet) {
  uint64_t index = 0;
  for (const std::string& path : opts.captures) {
    auto src = capture::OpenCaptureFile(path);
    if (!src.ok()) {
      if (report) fmt::print(stderr, "pgtlsmon: {}\n", std::string(src.status().message()));
      totals->rc = 1;
      continue;
    }
    const auto* file = dynamic_cast<const capture::FileSource*>(src->get());
    capture::RawPacket pkt;
    while (true) {
      auto more = (*src)->Next(&pkt);
      if (!more.ok()) {
        if (report) fmt::print(stderr, "pgtlsmon: {}\n", std::string(more.status().message()));
        totals->rc = 1;
        break;
      }
      if (!*more) break;
      on_packet(pkt, index);
      ++index;
      if (report) progress(path, file, index);
    }
    if (file != nullptr) {
      totals->caplen_over_len += file->stats().caplen_over_len;
      totals->ts_backwards += file->stats().ts_backwards;
    }
  }
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
      fmt::print(stderr, "pgtlsmon: cannot write {}: {}\n", opts.output, std::strerror(errno));
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
  Progress progress(opts.progress);
  const auto on_progress = [&](const std::string& path, const capture::FileSource* file,
                               uint64_t packets) {
    if (file != nullptr) {
      progress.Update(path, file->bytes_read(), file->file_size(), packets, records);
    }
  };
  if (threads == 1) {
    // The single-threaded path: no queue, no copy.
    Pipeline pipeline(opts.tracker, on_record);
    ReadCaptures(opts, true, &read, on_progress,
                 [&pipeline](const capture::RawPacket& pkt, uint64_t /*index*/) {
                   pipeline.OnPacket(pkt);
                 });
    pipeline.Finish();
    progress.Done();
    const parser::FlowTracker* trackers[] = {&pipeline.tracker()};
    ps = CollectStats(source, pipeline.input(), trackers);
  } else {
    // This thread reads and decodes; `threads` workers track the connections (ShardedPipeline).
    ShardedPipeline sharded(opts.tracker, threads, on_record);
    ReadCaptures(opts, true, &read, on_progress,
                 [&sharded](const capture::RawPacket& pkt, uint64_t /*index*/) {
                   sharded.OnPacket(pkt);
                 });
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
               std::strerror(output.error() != 0 ? output.error() : errno));
    rc = 1;
  }
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
