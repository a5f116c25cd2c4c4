#include "app/replay.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "capture/open_capture.h"
#include "exporter/metrics.h"
#include "exporter/record_json.h"
#include "exporter/table_report.h"
#include "fmt/core.h"
#include "fmt/format.h"
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

// What one pass over the captures counted, besides the trackers' own statistics.
struct ReadTotals {
  exporter::CaptureSourceStats source;
  parser::ParseStats decode;
  uint64_t caplen_over_len = 0;  // odd but readable records (capture::FileSourceStats)
  uint64_t ts_backwards = 0;
  int rc = 0;
};

// Reads every capture in order, decodes each frame and hands TCP segments to `on_segment`
// with their index among all packets of all captures. `report` (one reader of several only)
// prints errors and feeds the progress counters.
// Both callbacks are templates: no indirect call per packet.
template <typename ProgressFn, typename OnSegment>
void ReadCaptures(const ReplayOptions& opts, bool report, ReadTotals* totals, ProgressFn&& progress,
                  OnSegment&& on_segment) {
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
    parser::TcpSegment seg;
    while (true) {
      auto more = (*src)->Next(&pkt);
      if (!more.ok()) {
        if (report) fmt::print(stderr, "pgtlsmon: {}\n", std::string(more.status().message()));
        totals->rc = 1;
        break;
      }
      if (!*more) break;
      ++totals->source.packets;
      totals->source.bytes += pkt.caplen;
      if (parser::DecodeTcpSegment(pkt.linktype, pkt.data, opts.tracker.decap, &seg,
                                   &totals->decode) == parser::ParseResult::kOk) {
        on_segment(seg, pkt.ts_ns / 1000, index);
      }
      ++index;
      if (report) progress(path, file, totals->source.packets);
    }
    if (file != nullptr) {
      totals->caplen_over_len += file->stats().caplen_over_len;
      totals->ts_backwards += file->stats().ts_backwards;
    }
  }
}

// --threads N: N workers each read every capture (the page cache makes the second read a
// memory copy) and track the connections whose symmetric flow hash falls in their shard; the
// other shards' packets only move their clock (AdvanceTime), so idle sweeps run at the same
// packets as in one tracker. A record's `sequence` is the index of its connection's first
// packet in the whole input; each shard delivers its records in that order, and the merger
// (the calling thread) interleaves the shards by it, releasing a record once no shard can
// still deliver an earlier one (each shard publishes a watermark: the oldest connection it
// has not delivered, or the next packet index). The output equals the single-thread output
// while the connection table stays under --max-flows per shard (eviction order differs).
class ShardedReplay {
 public:
  ShardedReplay(const ReplayOptions& opts, size_t shards) : opts_(opts), shards_(shards) {
    for (auto& sh : shards_) {
      sh.tracker = std::make_unique<parser::FlowTracker>(
          opts.tracker, [&sh](parser::SessionRecord&& r) { sh.local.push_back(std::move(r)); });
    }
  }

  // Runs the workers; `emit` gets every record in first-packet order, on the calling thread.
  // `progress` is called now and then with (path, bytes read, file size, packets, records).
  void Run(const std::function<void(parser::SessionRecord&&)>& emit,
           const std::function<void(const std::string&, uint64_t, uint64_t, uint64_t)>& progress) {
    std::vector<std::thread> threads;
    threads.reserve(shards_.size());
    for (size_t i = 0; i < shards_.size(); ++i) threads.emplace_back([this, i] { Work(i); });
    Merge(emit, progress);
    for (auto& t : threads) t.join();
  }

  const ReadTotals& totals() const { return shards_[0].totals; }  // every reader saw the same
  int rc() const { return shards_[0].totals.rc; }
  size_t size() const { return shards_.size(); }
  const parser::FlowTracker& tracker(size_t i) const { return *shards_[i].tracker; }

 private:
  static constexpr uint64_t kPublishEvery = 2048;  // packets between two watermarks
  static constexpr uint64_t kDone = std::numeric_limits<uint64_t>::max();

  struct Shard {
    std::unique_ptr<parser::FlowTracker> tracker;
    std::vector<parser::SessionRecord> local;  // worker-only: delivered, not yet published
    ReadTotals totals;                         // worker-only until joined
    // Guarded by mu_:
    std::vector<parser::SessionRecord> ready;  // published, in increasing sequence
    uint64_t watermark = 0;                    // no record below it is still to be published
  };

  void Publish(Shard& sh, uint64_t next_index) {
    const uint64_t wm =
        next_index == kDone ? kDone : sh.tracker->oldest_pending_sequence().value_or(next_index);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (sh.ready.empty()) {
        sh.ready.swap(sh.local);
      } else {
        for (auto& r : sh.local) sh.ready.push_back(std::move(r));
        sh.local.clear();
      }
      sh.watermark = wm;
      ++published_;
    }
    cv_.notify_one();
  }

  void Work(size_t me) {
    Shard& sh = shards_[me];
    const uint64_t n = shards_.size();
    uint64_t since_publish = 0;
    const auto progress = [this](const std::string& path, const capture::FileSource* file,
                                 uint64_t pk) {
      if ((pk & 0x3fff) != 0) return;
      std::lock_guard<std::mutex> lock(progress_mu_);
      progress_path_ = path;
      progress_done_ = file != nullptr ? file->bytes_read() : 0;
      progress_total_ = file != nullptr ? file->file_size() : 0;
      progress_packets_.store(pk, std::memory_order_relaxed);
    };
    ReadCaptures(opts_, me == 0, &sh.totals, progress,
                 [&](const parser::TcpSegment& seg, uint64_t ts_us, uint64_t index) {
                   const uint64_t h = parser::FlowKeyHash(parser::MakeFlowKey(seg));
                   // Multiply-shift: the high bits of the hash pick the shard.
                   const auto shard =
                       static_cast<uint64_t>((static_cast<unsigned __int128>(h) * n) >> 64);
                   if (shard == me) {
                     sh.tracker->OnSegment(seg, ts_us, index);
                   } else {
                     sh.tracker->AdvanceTime(ts_us);
                   }
                   if (++since_publish >= kPublishEvery) {
                     since_publish = 0;
                     Publish(sh, index + 1);
                   }
                 });
    sh.tracker->Finish();
    Publish(sh, kDone);
  }

  void Merge(
      const std::function<void(parser::SessionRecord&&)>& emit,
      const std::function<void(const std::string&, uint64_t, uint64_t, uint64_t)>& progress) {
    const size_t n = shards_.size();
    std::vector<std::deque<parser::SessionRecord>> inbox(n);
    std::vector<uint64_t> watermark(n, 0);
    std::vector<parser::SessionRecord> taken;
    uint64_t seen = 0;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        // The timeout only refreshes the progress line.
        cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return published_ != seen; });
        seen = published_;
        for (size_t i = 0; i < n; ++i) {
          taken.swap(shards_[i].ready);
          for (auto& r : taken) inbox[i].push_back(std::move(r));
          taken.clear();
          watermark[i] = shards_[i].watermark;
        }
      }
      // Deliver while the smallest head is below every other shard's head or watermark.
      while (true) {
        size_t best = n;
        for (size_t i = 0; i < n; ++i) {
          if (!inbox[i].empty() &&
              (best == n || inbox[i].front().sequence < inbox[best].front().sequence)) {
            best = i;
          }
        }
        if (best == n) break;
        const uint64_t seq = inbox[best].front().sequence;
        bool safe = true;
        for (size_t i = 0; i < n && safe; ++i) {
          if (i != best && inbox[i].empty() && watermark[i] <= seq) safe = false;
        }
        if (!safe) break;
        emit(std::move(inbox[best].front()));
        inbox[best].pop_front();
      }
      if (progress) {
        std::lock_guard<std::mutex> lock(progress_mu_);
        progress(progress_path_, progress_done_, progress_total_,
                 progress_packets_.load(std::memory_order_relaxed));
      }
      bool all_done = true;
      for (size_t i = 0; i < n; ++i) {
        if (watermark[i] != kDone || !inbox[i].empty()) all_done = false;
      }
      if (all_done) return;
    }
  }

  const ReplayOptions& opts_;
  std::vector<Shard> shards_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t published_ = 0;  // guarded by mu_: count of Publish() calls
  std::mutex progress_mu_;
  std::string progress_path_;
  uint64_t progress_done_ = 0;
  uint64_t progress_total_ = 0;
  std::atomic<uint64_t> progress_packets_{0};
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
  const auto on_record = [&](parser::SessionRecord&& r) {
    ++records;
    if (metrics) metrics->OnRecord(r);
    if (jsonl) {
      exporter::AppendRecordJson(r, output.buf());
      output.MaybeFlush();
    } else {
      table->OnRecord(r);
    }
  };

  // Standard input can be read only once: one thread then.
  bool stdin_input = false;
  for (const std::string& path : opts.captures) stdin_input |= path == "-";
  const size_t threads = stdin_input ? 1 : static_cast<size_t>(std::max(opts.threads, 1));

  ReadTotals read;
  std::vector<const parser::FlowTracker*> trackers;
  std::unique_ptr<parser::FlowTracker> single;
  std::unique_ptr<ShardedReplay> sharded;
  if (threads == 1) {
    Progress progress(opts.progress);
    single = std::make_unique<parser::FlowTracker>(opts.tracker, on_record);
    parser::FlowTracker& tracker = *single;
    ReadCaptures(
        opts, true, &read,
        [&](const std::string& path, const capture::FileSource* file, uint64_t packets) {
          if (file != nullptr) {
            progress.Update(path, file->bytes_read(), file->file_size(), packets, records);
          }
        },
        [&tracker](const parser::TcpSegment& seg, uint64_t ts_us, uint64_t /*index*/) {
          tracker.OnSegment(seg, ts_us);
        });
    tracker.Finish();
    progress.Done();
    trackers.push_back(single.get());
  } else {
    Progress progress(opts.progress, 1);
    sharded = std::make_unique<ShardedReplay>(opts, threads);
    sharded->Run(std::function<void(parser::SessionRecord &&)>(on_record),
                 [&](const std::string& path, uint64_t done, uint64_t total, uint64_t packets) {
                   if (total > 0) progress.Update(path, done, total, packets, records);
                 });
    progress.Done();
    read = sharded->totals();
    for (size_t i = 0; i < sharded->size(); ++i) trackers.push_back(&sharded->tracker(i));
  }
  int rc = read.rc;

  if (table) table->Finish();
  if (!output.Flush()) {
    fmt::print(stderr, "pgtlsmon: writing {}: {}\n", opts.output.empty() ? "stdout" : opts.output,
               std::strerror(errno));
    rc = 1;
  }
  // What was counted but not turned into records: for the metrics file and, when anything
  // was lost or odd, one line on stderr (nothing is dropped silently).
  exporter::PipelineStats ps;
  {
    exporter::CaptureSourceStats totals = read.source;
    totals.source = "replay";
    totals.skipped_packets = 0;
    totals.skipped_bytes = 0;
    ps.parse = read.decode;
    uint64_t evictions[static_cast<size_t>(parser::EvictionReason::kCount)] = {};
    for (const parser::FlowTracker* t : trackers) {
      totals.skipped_packets += t->stats().skipped_segments;
      totals.skipped_bytes += t->stats().skipped_bytes;
      ps.parse.Merge(t->parse_stats());
      ps.flows_active += t->active_flows();
      for (size_t i = 0; i < static_cast<size_t>(parser::EvictionReason::kCount); ++i) {
        evictions[i] += t->stats().evictions[i];
      }
    }
    ps.sources.push_back(totals);
    for (size_t i = 0; i < static_cast<size_t>(parser::EvictionReason::kCount); ++i) {
      ps.evictions.emplace_back(parser::EvictionReasonName(static_cast<parser::EvictionReason>(i)),
                                evictions[i]);
    }
  }
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
