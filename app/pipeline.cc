// app/pipeline.cc: see pipeline.h.
#include "app/pipeline.h"

#include <algorithm>

namespace pgtlsmon::app {

exporter::PipelineStats CollectStats(const capture::LiveStats& source, const InputCounters& input,
                                     std::span<const parser::FlowTracker* const> trackers,
                                     std::optional<uint64_t> session_log_errors) {
  exporter::PipelineStats ps;
  exporter::CaptureSourceStats cs;
  cs.source = source.source;
  cs.packets = input.packets;
  cs.bytes = input.bytes;
  cs.skipped_packets = source.skipped_packets;
  cs.skipped_bytes = source.skipped_bytes;
  cs.drops = source.drops;
  cs.tunnel_packets = source.tunnel_packets;
  cs.read_errors = source.read_errors;
  ps.parse = input.decode;
  constexpr auto kReasons = static_cast<size_t>(parser::EvictionReason::kCount);
  uint64_t evictions[kReasons] = {};
  for (const parser::FlowTracker* t : trackers) {
    cs.skipped_packets += t->stats().skipped_segments;
    cs.skipped_bytes += t->stats().skipped_bytes;
    ps.parse.Merge(t->parse_stats());
    ps.flows_active += t->active_flows();
    for (size_t i = 0; i < kReasons; ++i) evictions[i] += t->stats().evictions[i];
  }
  ps.sources.push_back(std::move(cs));
  for (size_t i = 0; i < kReasons; ++i) {
    ps.evictions.emplace_back(parser::EvictionReasonName(static_cast<parser::EvictionReason>(i)),
                              evictions[i]);
  }
  ps.session_log_errors = session_log_errors;
  return ps;
}

}  // namespace pgtlsmon::app

namespace pgtlsmon::app {

ShardedPipeline::ShardedPipeline(const parser::FlowTrackerConfig& cfg, size_t workers,
                                 RecordSink sink)
    : decap_(cfg.decap), sink_(std::move(sink)) {
  workers = std::max<size_t>(workers, 1);
  inbox_.resize(workers);
  watermarks_.assign(workers, 0);
  workers_.reserve(workers);
  // --max-flows bounds the whole job, not each worker: the workers share it.
  parser::FlowTrackerConfig worker_cfg = cfg;
  worker_cfg.max_flows = std::max<size_t>((cfg.max_flows + workers - 1) / workers, 1);
  for (size_t i = 0; i < workers; ++i) {
    auto w = std::make_unique<Worker>();
    Worker* wp = w.get();
    w->tracker =
        std::make_unique<parser::FlowTracker>(worker_cfg, [this, wp](parser::SessionRecord&& r) {
          wp->local.push_back(std::move(r));
          // At the end of the input the tracker closes every open connection in first-packet
          // order: hand them over in slices (nothing later can come before this one), so the
          // records of a table full of open connections are not all in memory at once.
          if (wp->finishing && wp->local.size() >= kFinishSlice) {
            Publish(*wp, wp->local.back().sequence + 1);
          }
        });
    for (Batch& b : w->ring) {
      b.items.reserve(kBatchItems + 1);
      b.arena.reserve(kBatchBytes + 65536);
    }
    workers_.push_back(std::move(w));
  }
  for (auto& w : workers_) w->thread = std::thread([this, wp = w.get()] { Work(*wp); });
}

ShardedPipeline::~ShardedPipeline() {
  if (!finished_) Finish();
}

ShardedPipeline::Batch& ShardedPipeline::Open(Worker& w) {
  const uint64_t sent = w.sent.load(std::memory_order_relaxed);
  Batch& b = w.ring[sent % kRingBatches];
  if (!w.filling) {
    // Back-pressure: wait until the worker is through with the batch that used this slot.
    uint64_t done = w.done.load(std::memory_order_acquire);
    while (sent - done >= kRingBatches) {
      w.done.wait(done, std::memory_order_acquire);
      done = w.done.load(std::memory_order_acquire);
    }
    b.items.clear();
    b.arena.clear();
    b.last = false;
    w.filling = true;
  }
  return b;
}

void ShardedPipeline::Send(Worker& w, bool last) {
  Batch& b = Open(w);  // an empty batch still carries the end index (and `last`)
  b.end_index = next_index_;
  b.last = last;
  w.filling = false;
  w.sent.fetch_add(1, std::memory_order_release);
  w.sent.notify_one();
}

void ShardedPipeline::Flush() {
  for (auto& w : workers_) Send(*w, false);
  Merge(false);
}

void ShardedPipeline::Finish() {
  if (finished_) return;
  finished_ = true;
  for (auto& w : workers_) Send(*w, true);
  Merge(true);
  for (auto& w : workers_) w->thread.join();
}

void ShardedPipeline::Work(Worker& w) {
  uint64_t next = 0;
  while (true) {
    uint64_t sent = w.sent.load(std::memory_order_acquire);
    while (sent == next) {
      w.sent.wait(sent, std::memory_order_acquire);
      sent = w.sent.load(std::memory_order_acquire);
    }
    Batch& b = w.ring[next % kRingBatches];
    parser::FlowTracker& t = *w.tracker;
    for (Item& it : b.items) {
      if (it.index == kTick) {
        t.AdvanceTime(it.ts_us);
      } else {
        it.seg.payload = std::span<const uint8_t>(b.arena).subspan(it.offset, it.size);
        t.OnSegment(it.seg, it.ts_us, it.index);
      }
    }
    const bool last = b.last;
    uint64_t watermark = kDone;
    if (last) {
      w.finishing = true;
      t.Finish();
    } else {
      watermark = t.oldest_pending_sequence().value_or(b.end_index);
    }
    ++next;
    w.done.store(next, std::memory_order_release);
    w.done.notify_one();
    Publish(w, watermark);
    if (last) return;
  }
}

void ShardedPipeline::Publish(Worker& w, uint64_t watermark) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (w.local.empty() && w.watermark == watermark) return;
    if (w.ready.empty()) {
      w.ready.swap(w.local);
    } else {
      for (auto& r : w.local) w.ready.push_back(std::move(r));
    }
    w.local.clear();
    w.watermark = watermark;
    ++published_;
  }
  cv_.notify_one();
}

void ShardedPipeline::Merge(bool wait) {
  const size_t n = workers_.size();
  uint64_t seen = 0;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (wait) cv_.wait(lock, [&] { return published_ != seen; });
      seen = published_;
      for (size_t i = 0; i < n; ++i) {
        taken_.swap(workers_[i]->ready);
        for (auto& r : taken_) inbox_[i].push_back(std::move(r));
        taken_.clear();
        watermarks_[i] = workers_[i]->watermark;
      }
    }
    // Deliver while the smallest head is below every other shard's head or watermark.
    while (true) {
      size_t best = n;
      for (size_t i = 0; i < n; ++i) {
        if (!inbox_[i].empty() &&
            (best == n || inbox_[i].front().sequence < inbox_[best].front().sequence)) {
          best = i;
        }
      }
      if (best == n) break;
      const uint64_t seq = inbox_[best].front().sequence;
      bool safe = true;
      for (size_t i = 0; i < n && safe; ++i) {
        if (i != best && inbox_[i].empty() && watermarks_[i] <= seq) safe = false;
      }
      if (!safe) break;
      sink_(std::move(inbox_[best].front()));
      inbox_[best].pop_front();
    }
    if (!wait) return;
    bool all_done = true;
    for (size_t i = 0; i < n; ++i) {
      if (watermarks_[i] != kDone || !inbox_[i].empty()) all_done = false;
    }
    if (all_done) return;
  }
}

}  // namespace pgtlsmon::app
