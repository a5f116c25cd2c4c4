// exporter/stats_snapshot.h: one consistent snapshot of the pipeline's counters per scrape.
//
// The session counters (Metrics::OnRecord) move the moment a record is final; the pipeline's
// own counters (packets, bytes, parse errors, flow table) belong to the capture thread, which
// alone may read them. A scrape therefore asks that thread for a snapshot taken after the
// scrape began, and waits for it: everything in the answer is at least as new as the session
// counts beside it (a session that is counted has its packets counted). The capture thread
// polls requested() (a relaxed atomic load: free on the packet path) and calls Publish().
// If it does not answer within the wait (it is stuck), the scrape gets the newest snapshot
// there is and pgtlsmon_stats_stale_scrapes_total counts it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "exporter/metrics.h"

namespace pgtlsmon::exporter {

class StatsSnapshot {
 public:
  // Scrape side (any thread).
  PipelineStats Fresh(std::chrono::milliseconds max_wait);
  // Capture side: whether a scrape waits for a snapshot.
  bool requested() const { return requested_.load(std::memory_order_relaxed); }
  // Capture side: call ticket() before gathering the counters, then Publish() them with it.
  uint64_t ticket() const { return asked_.load(std::memory_order_acquire); }
  void Publish(PipelineStats stats, uint64_t ticket);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  PipelineStats latest_;   // guarded by mu_
  uint64_t answered_ = 0;  // guarded by mu_: the newest ticket a published snapshot carries
  uint64_t stale_ = 0;     // guarded by mu_
  std::atomic<uint64_t> asked_{0};
  std::atomic<bool> requested_{false};
};

}  // namespace pgtlsmon::exporter
