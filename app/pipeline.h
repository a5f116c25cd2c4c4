// app/pipeline.h: the one path from captured packets to session records. `replay` and `watch`
// both drive it; it is also the one place that turns the counters along that path into the
// exporter's PipelineStats.
//
//   capture::PacketSource          Pipeline::OnPacket                      RecordSink
//   (FileSource, LiveSource) --RawPacket--> count, decode --TcpSegment--> FlowTracker --records-->
//                                                                      (table/jsonl/log, metrics)
//
// A driver owns the loop: it pulls packets from its source, calls OnPacket for each, and at
// the end Finish(). Replay with --threads N drives a ShardedPipeline instead (the same calls):
// the driver's thread stays the one reader and decoder, N workers each own the connections of
// one shard (ShardOf), and their records are merged back into the single-thread order on the
// driver's thread. Watch also calls ExpireIdle on wall-clock time and tells its LiveSource
// about final records (set_on_final). CollectStats builds the statistics from a source's
// counters and the pipelines' (the reader's input counts, every tracker's table);
// exporter::StatsSnapshot hands one consistent copy to a scrape.
//
// Where new work plugs in: a new encapsulation is one more decoder in the parser's packet
// decoder (the tunnel ports come with the tracker config); a consumer of records (a what-if engine)
// is one more RecordSink; another back end is a capture::LiveSource; more inputs (files,
// decompressors) feed the one reader loop, not more paths.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "capture/live_source.h"
#include "capture/packet_source.h"
#include "exporter/metrics.h"
#include "parser/flow_tracker.h"
#include "parser/packet_decoder.h"

namespace pgtlsmon::app {

// What a pipeline was handed: every packet read, and what decoding them found wrong.
struct InputCounters {
  uint64_t packets = 0;
  uint64_t bytes = 0;  // captured bytes (caplen)
  parser::ParseStats decode;
};

// Which of `shards` owns the connection of `seg`: the high bits of its symmetric flow hash
// (both directions agree; the key is the innermost 5-tuple, tunnels do not matter).
inline uint64_t ShardOf(const parser::TcpSegment& seg, uint64_t shards) {
  const uint64_t h = parser::FlowKeyHash(parser::MakeFlowKey(seg));
  return static_cast<uint64_t>((static_cast<unsigned __int128>(h) * shards) >> 64);  // mul-shift
}

// FlowTracker's idle-sweep schedule followed from outside: Tick() is true at the segments where
// a tracker that saw every segment so far would sweep (or start its schedule). A tracker told
// AdvanceTime(ts) at exactly those points, before its own later segments, sweeps exactly as the
// one tracker of a single-threaded run does.
class SweepClock {
 public:
  bool Tick(uint64_t ts_us) {
    if (ts_us < next_us_) return false;
    next_us_ = ts_us + parser::FlowTracker::kSweepIntervalUs;
    return true;
  }

 private:
  uint64_t next_us_ = 0;
};

class Pipeline {
 public:
  using RecordSink = parser::FlowTracker::RecordFn;

  Pipeline(const parser::FlowTrackerConfig& cfg, RecordSink sink)
      : decap_(cfg.decap), tracker_(cfg, std::move(sink)) {}

  // The connection's record is final (live: the back end may stop copying its payload).
  void set_on_final(parser::FlowTracker::FinalFn fn) { tracker_.set_on_final(std::move(fn)); }

  // One captured packet (records carry no `sequence`).
  void OnPacket(const capture::RawPacket& pkt) {
    if (Decode(pkt)) tracker_.OnSegment(seg_, pkt.ts_ns / 1000);
  }
  // Drops connections idle for longer than the timeout, as of `now_us` (live: wall clock).
  void ExpireIdle(uint64_t now_us) { tracker_.ExpireIdle(now_us); }
  // End of input: every connection still open gets its record.
  void Finish() { tracker_.Finish(); }

  const InputCounters& input() const { return input_; }
  const parser::FlowTracker& tracker() const { return tracker_; }

 private:
  // Counts the packet; true when it is a TCP segment (then in seg_).
  bool Decode(const capture::RawPacket& pkt) {
    ++input_.packets;
    input_.bytes += pkt.caplen;
    return parser::DecodeTcpSegment(pkt.linktype, pkt.data, decap_, &seg_, &input_.decode) ==
           parser::ParseResult::kOk;
  }

  parser::DecapConfig decap_;  // tunnel ports (--vxlan-ports, --geneve-ports)
  parser::FlowTracker tracker_;
  parser::TcpSegment seg_;
  InputCounters input_;
};

// Replay on N worker threads, driven like a Pipeline (OnPacket for every packet, then Finish)
// from one thread, the reader, which decodes each packet once and hands the TCP segment to the
// worker owning its connection (ShardOf). Decoding is needed to find the connection at all
// (its 5-tuple lies behind link, VLAN and tunnel layers), so handing over the raw frame to be
// decoded again by the worker would only add work (decoding is ~7 % of a single-thread run's
// samples, docs/BENCHMARKS.md). Segments travel in batches (kBatchItems segments or
// kBatchBytes of payload, copied into the batch's arena: a RawPacket is only valid until the
// source's next Next()) through a ring of kRingBatches per worker; a full ring blocks the
// reader, so memory is bounded (about workers x kRingBatches x kBatchBytes) whatever the input.
// Idle sweeps: the reader follows the trackers' sweep schedule (SweepClock) and sends every
// worker the tick in stream order, so each tracker sweeps when the single tracker would.
// Records: a record's `sequence` is the index of its connection's first packet in the whole
// input; each worker delivers in that order and publishes a watermark (no later record of its
// shard can be older); the reader thread interleaves the shards by sequence and calls `sink`
// with each record in the single-thread order, from OnPacket now and then and from Finish.
// Counters: packets, bytes and decode errors are the reader's; every tracker counts its
// segments; their sums equal a single pipeline's (table-full evictions too while the hash
// spreads connections evenly: the workers share --max-flows, each holding its share).
class ShardedPipeline {
 public:
  using RecordSink = std::function<void(parser::SessionRecord&&)>;
  static constexpr size_t kBatchItems = 1024;
  static constexpr size_t kBatchBytes = size_t{1} << 20;
  static constexpr size_t kFinishSlice = 1024;  // records per hand-over at the end
  static constexpr size_t kRingBatches = 4;

  ShardedPipeline(const parser::FlowTrackerConfig& cfg, size_t workers, RecordSink sink);
  ~ShardedPipeline();  // finishes (joins the workers) if Finish() was not called
  ShardedPipeline(const ShardedPipeline&) = delete;
  ShardedPipeline& operator=(const ShardedPipeline&) = delete;

  void OnPacket(const capture::RawPacket& pkt) {
    const uint64_t index = next_index_;
    ++input_.packets;
    input_.bytes += pkt.caplen;
    if (parser::DecodeTcpSegment(pkt.linktype, pkt.data, decap_, &seg_, &input_.decode) ==
        parser::ParseResult::kOk) {
      const uint64_t ts_us = pkt.ts_ns / 1000;
      if (clock_.Tick(ts_us)) {
        for (auto& w : workers_) Add(*w, nullptr, ts_us, kTick);
      }
      Add(*workers_[ShardOf(seg_, workers_.size())], &seg_, ts_us, index);
    }
    // Batches sent above carried end_index == index (this packet was still to come); it is
    // dispatched now.
    next_index_ = index + 1;
    if ((index & (kFlushEvery - 1)) == kFlushEvery - 1) Flush();
  }
  // End of input: workers finish their connections; every record is delivered to the sink.
  void Finish();

  const InputCounters& input() const { return input_; }
  size_t size() const { return workers_.size(); }
  // Only after Finish().
  const parser::FlowTracker& tracker(size_t i) const { return *workers_[i]->tracker; }

 private:
  static constexpr uint64_t kTick = std::numeric_limits<uint64_t>::max();  // Item::index
  static constexpr uint64_t kDone = std::numeric_limits<uint64_t>::max();  // watermark
  // Packets between two flushes of every worker's partly filled batch (a power of two): a
  // worker with few connections still moves its watermark, so the merge never waits long.
  static constexpr uint64_t kFlushEvery = 16384;

  struct Item {
    parser::TcpSegment seg;  // seg.payload is empty: the bytes are arena[offset, offset+size)
    uint64_t ts_us = 0;
    uint64_t index = 0;  // kTick: only AdvanceTime(ts_us)
    uint32_t offset = 0;
    uint32_t size = 0;
  };
  struct Batch {
    std::vector<Item> items;
    std::vector<uint8_t> arena;
    uint64_t end_index = 0;  // no packet with a smaller index is still to come to this worker
    bool last = false;
  };
  // Laid out by who writes it, so the reader's and the worker's counters sit on separate cache
  // lines (alignas(64)) and the space after each is used by fields of the same owner.
  struct Worker {
    // The reader's line.
    alignas(64) std::atomic<uint64_t> sent{0};  // batches handed over by the reader
    bool filling = false;                       // reader: ring[sent % kRingBatches] is open
    // Guarded by ShardedPipeline::mu_ (the worker publishes, the reader merges):
    std::vector<parser::SessionRecord> ready;  // published, in increasing sequence
    uint64_t watermark = 0;                    // no record below it is still to be published
    // The worker's line.
    alignas(64) std::atomic<uint64_t> done{0};  // batches the worker is through with
    bool finishing = false;                     // worker: in FlowTracker::Finish()
    std::unique_ptr<parser::FlowTracker> tracker;
    std::vector<parser::SessionRecord> local;  // worker: delivered, not yet published
    std::thread thread;
    std::array<Batch, kRingBatches> ring;  // filled by the reader, emptied by the worker
  };

  // Reader side.
  void Add(Worker& w, const parser::TcpSegment* seg, uint64_t ts_us, uint64_t index) {
    Batch& b = Open(w);
    Item& it = b.items.emplace_back();
    it.ts_us = ts_us;
    it.index = index;
    if (seg != nullptr) {
      it.seg = *seg;
      it.seg.payload = {};
      it.offset = static_cast<uint32_t>(b.arena.size());
      it.size = static_cast<uint32_t>(seg->payload.size());
      b.arena.insert(b.arena.end(), seg->payload.begin(), seg->payload.end());
    }
    if (b.items.size() >= kBatchItems || b.arena.size() >= kBatchBytes) Send(w, false);
  }
  Batch& Open(Worker& w);
  void Send(Worker& w, bool last);
  void Flush();
  void Merge(bool wait);  // moves published records to the sink; `wait`: until all are out

  // Worker side.
  void Work(Worker& w);
  void Publish(Worker& w, uint64_t watermark);

  parser::DecapConfig decap_;
  parser::TcpSegment seg_;
  InputCounters input_;
  SweepClock clock_;
  uint64_t next_index_ = 0;
  bool finished_ = false;
  RecordSink sink_;
  std::vector<std::unique_ptr<Worker>> workers_;
  // The merge (reader thread only).
  std::vector<std::deque<parser::SessionRecord>> inbox_;
  std::vector<uint64_t> watermarks_;
  std::vector<parser::SessionRecord> taken_;
  // Between workers and the merge.
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t published_ = 0;  // guarded by mu_: Publish() calls
};

// The statistics of one run: `source` is the capture back end's own counters (replay: just its
// label), `input` what the pipeline's reader was handed, `trackers` every pipeline's tracker;
// `session_log_errors` only when there is a session log.
exporter::PipelineStats CollectStats(const capture::LiveStats& source, const InputCounters& input,
                                     std::span<const parser::FlowTracker* const> trackers,
                                     std::optional<uint64_t> session_log_errors = std::nullopt);

}  // namespace pgtlsmon::app
