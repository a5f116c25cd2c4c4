#include "app/replay.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "capture/open_capture.h"
#include "exporter/metrics.h"
#include "exporter/record_json.h"
#include "exporter/table_report.h"
#include "fmt/core.h"
#include "parser/packet_decoder.h"

namespace pgtlsmon::app {
namespace {

using Clock = std::chrono::steady_clock;

// Buffered writes to a FILE*, so a record costs a memcpy and not a system call.
class OutputBuffer {
 public:
  explicit OutputBuffer(FILE* f) : f_(f) { buf_.reserve(kFlushAt + 4096); }
  ~OutputBuffer() { Flush(); }
  std::string* buf() { return &buf_; }
  void MaybeFlush() {
    if (buf_.size() >= kFlushAt) Flush();
  }
  bool Flush() {
    if (!buf_.empty() && std::fwrite(buf_.data(), 1, buf_.size(), f_) != buf_.size()) ok_ = false;
    buf_.clear();
    if (std::fflush(f_) != 0) ok_ = false;
    return ok_;
  }
  bool ok() const { return ok_; }

 private:
  static constexpr size_t kFlushAt = 1 << 20;
  FILE* f_;
  std::string buf_;
  bool ok_ = true;
};

// Progress on stderr (only when it is a terminal): packets, MB, sessions, ETA.
class Progress {
 public:
  explicit Progress(bool enabled) : enabled_(enabled && isatty(STDERR_FILENO) == 1) {}
  void Update(const std::string& name, uint64_t done, uint64_t total, uint64_t packets,
              uint64_t sessions) {
    if (!enabled_ || (++calls_ & 0x3fff) != 0) return;
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
  bool shown_ = false;
  uint64_t calls_ = 0;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_ = start_;
};

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
  if (!jsonl) table.emplace(out);

  std::unique_ptr<exporter::Metrics> metrics;
  if (!opts.metrics_file.empty()) {
    exporter::Metrics::Options mo;
    mo.capture = "replay";
    mo.max_clients = opts.max_clients;
    metrics = std::make_unique<exporter::Metrics>(mo);
  }

  uint64_t records = 0;
  parser::FlowTracker tracker(opts.tracker, [&](parser::SessionRecord&& r) {
    ++records;
    if (metrics) metrics->OnRecord(r);
    if (jsonl) {
      exporter::AppendRecordJson(r, output.buf());
      output.MaybeFlush();
    } else {
      table->OnRecord(r);
    }
  });

  int rc = 0;
  Progress progress(opts.progress);
  exporter::CaptureSourceStats totals;
  totals.source = "replay";
  parser::ParseStats decode_stats;
  for (const std::string& path : opts.captures) {
    auto src = capture::OpenCaptureFile(path);
    if (!src.ok()) {
      fmt::print(stderr, "pgtlsmon: {}\n", std::string(src.status().message()));
      rc = 1;
      continue;
    }
    const auto* file = dynamic_cast<const capture::FileSource*>(src->get());
    capture::RawPacket pkt;
    parser::TcpSegment seg;
    while (true) {
      auto more = (*src)->Next(&pkt);
      if (!more.ok()) {
        fmt::print(stderr, "pgtlsmon: {}\n", std::string(more.status().message()));
        rc = 1;
        break;
      }
      if (!*more) break;
      ++totals.packets;
      totals.bytes += pkt.caplen;
      if (parser::DecodeTcpSegment(pkt.linktype, pkt.data, &seg, &decode_stats) ==
          parser::ParseResult::kOk) {
        tracker.OnSegment(seg, pkt.ts_ns / 1000);
      }
      if (file != nullptr) {
        progress.Update(path, file->bytes_read(), file->file_size(), totals.packets, records);
      }
    }
  }
  tracker.Finish();
  progress.Done();

  if (table) table->Finish();
  if (!output.Flush()) {
    fmt::print(stderr, "pgtlsmon: writing {}: {}\n", opts.output.empty() ? "stdout" : opts.output,
               std::strerror(errno));
    rc = 1;
  }
  if (metrics) {
    metrics->SetStatsProvider([&] {
      exporter::PipelineStats ps;
      totals.skipped_packets = tracker.stats().skipped_segments;
      totals.skipped_bytes = tracker.stats().skipped_bytes;
      ps.sources.push_back(totals);
      ps.parse = tracker.parse_stats();
      ps.parse.Merge(decode_stats);
      ps.flows_active = tracker.active_flows();
      for (size_t i = 0; i < static_cast<size_t>(parser::EvictionReason::kCount); ++i) {
        ps.evictions.emplace_back(
            parser::EvictionReasonName(static_cast<parser::EvictionReason>(i)),
            tracker.stats().evictions[i]);
      }
      return ps;
    });
    if (auto st = metrics->WriteTextFile(opts.metrics_file); !st.ok()) {
      fmt::print(stderr, "pgtlsmon: {}\n", std::string(st.message()));
      rc = 1;
    }
  }
  return rc;
}

}  // namespace pgtlsmon::app
