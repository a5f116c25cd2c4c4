// app/pipeline.h: the one path from captured packets to session records. `replay` and `watch`
// both drive it; it is also the one place that turns the counters along that path into the
// exporter's PipelineStats.
//
//   capture::PacketSource          Pipeline::OnPacket                      RecordSink
//   (FileSource, LiveSource) --RawPacket--> count, decode --TcpSegment--> FlowTracker --records-->
//                                                                      (table/jsonl/log, metrics)
//
// A driver owns the loop: it pulls packets from its source, calls OnPacket for each, and at
// the end Finish(). Replay with --threads N runs N pipelines, each owning the connections of
// one shard (SetShard) and reading every packet. Watch also calls ExpireIdle on wall-clock
// time and tells its LiveSource about final records (set_on_final). CollectStats builds the
// statistics from a source's counters and the pipelines' (one reader's input counts, every
// tracker's table); exporter::StatsSnapshot hands one consistent copy to a scrape.
//
// Where new work plugs in: a new encapsulation is one more decoder in the parser's packet
// decoder (the tunnel ports come with the tracker config); a consumer of records (a what-if engine)
// is one more RecordSink; another back end is a capture::LiveSource; sharded replay of more inputs
// adds readers, not paths.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <utility>

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

class Pipeline {
 public:
  using RecordSink = parser::FlowTracker::RecordFn;

  Pipeline(const parser::FlowTrackerConfig& cfg, RecordSink sink)
      : decap_(cfg.decap), tracker_(cfg, std::move(sink)) {}

  // This pipeline tracks only the connections whose flow hash falls in shard `shard` of
  // `shards`; the others' packets only move its clock (FlowTracker::AdvanceTime), so idle
  // sweeps happen at the same packets as in one pipeline seeing everything.
  void SetShard(uint64_t shard, uint64_t shards) {
    shard_ = shard;
    shards_ = shards;
  }
  // The connection's record is final (live: the back end may stop copying its payload).
  void set_on_final(parser::FlowTracker::FinalFn fn) { tracker_.set_on_final(std::move(fn)); }

  // One captured packet (live, and replay with one thread: records carry no `sequence`).
  void OnPacket(const capture::RawPacket& pkt) {
    if (Decode(pkt)) tracker_.OnSegment(seg_, pkt.ts_ns / 1000);
  }
  // The same, with the packet's position in the whole input, which becomes a record's
  // `sequence` (to merge shards), for a sharded pipeline.
  void OnPacket(const capture::RawPacket& pkt, uint64_t index) {
    if (!Decode(pkt)) return;
    if (shards_ > 1 && ShardOf(seg_) != shard_) {
      tracker_.AdvanceTime(pkt.ts_ns / 1000);
    } else {
      tracker_.OnSegment(seg_, pkt.ts_ns / 1000, index);
    }
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
  uint64_t ShardOf(const parser::TcpSegment& seg) const {
    const uint64_t h = parser::FlowKeyHash(parser::MakeFlowKey(seg));
    // Multiply-shift: the high bits of the hash pick the shard.
    return static_cast<uint64_t>((static_cast<unsigned __int128>(h) * shards_) >> 64);
  }

  parser::DecapConfig decap_;  // tunnel ports (--vxlan-ports, --geneve-ports)
  parser::FlowTracker tracker_;
  parser::TcpSegment seg_;
  InputCounters input_;
  uint64_t shard_ = 0;
  uint64_t shards_ = 1;
};

// The statistics of one run: `source` is the capture back end's own counters (replay: just its
// label), `input` what the pipelines read (one reader's, as every shard reads the same
// packets), `trackers` every pipeline's tracker; `session_log_errors` only when there is a
// session log.
exporter::PipelineStats CollectStats(const capture::LiveStats& source, const InputCounters& input,
                                     std::span<const parser::FlowTracker* const> trackers,
                                     std::optional<uint64_t> session_log_errors = std::nullopt);

}  // namespace pgtlsmon::app
