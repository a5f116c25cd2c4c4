#include "exporter/stats_snapshot.h"

namespace pgtlsmon::exporter {

PipelineStats StatsSnapshot::Fresh(std::chrono::milliseconds max_wait) {
  std::unique_lock<std::mutex> lock(mu_);
  if (published_changes_ == changes_.load(std::memory_order_acquire)) {
    // No session counted since the newest snapshot was gathered: it is as new as they are.
    PipelineStats out = latest_;
    out.stale_scrapes = stale_;
    return out;
  }
  // A snapshot whose ticket is >= mine was gathered after this point.
  const uint64_t mine = asked_.fetch_add(1, std::memory_order_acq_rel) + 1;
  requested_.store(true, std::memory_order_relaxed);
  if (!cv_.wait_for(lock, max_wait, [&] { return answered_ >= mine; })) ++stale_;
  PipelineStats out = latest_;
  out.stale_scrapes = stale_;
  return out;
}

void StatsSnapshot::Publish(PipelineStats stats, uint64_t ticket) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    latest_ = std::move(stats);
    // Publish() runs on the thread that calls Changed(), right after gathering: no session was
    // counted in between.
    published_changes_ = changes_.load(std::memory_order_relaxed);
    if (ticket > answered_) answered_ = ticket;
    if (answered_ >= asked_.load(std::memory_order_acquire)) {
      requested_.store(false, std::memory_order_relaxed);
    }
  }
  cv_.notify_all();
}

}  // namespace pgtlsmon::exporter
