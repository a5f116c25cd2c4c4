// exporter/stats_snapshot.h: one consistent snapshot of the pipeline's counters per scrape.
//
// The session counters (Metrics::OnRecord) move the moment a record is final; the pipeline's
// own counters (packets, bytes, parse errors, flow table) belong to the capture thread, which
// alone may read them, and which publishes a snapshot of them every second. A scrape that
// finds a session counted after the newest snapshot was taken asks that thread for a new one
// and waits for it: everything in the answer is then at least as new as the session counts
// beside it (a session that is counted has its packets counted). A scrape that finds none
// (an idle pipeline) takes the newest snapshot at once. The capture thread calls Changed()
// before counting a session, polls requested() (relaxed atomic loads: free on the packet
// path), and calls Publish(). If it does not answer within the wait (it is stuck), the scrape
// gets the newest snapshot there is and pgtlsmon_stats_stale_scrapes_total counts it.
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
  // Capture side, before a session is counted (Metrics::OnRecord). One thread only.
  void Changed() {
    changes_.store(changes_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }
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
  uint64_t published_changes_ = 0;  // guarded by mu_: changes_ when latest_ was gathered
  std::atomic<uint64_t> changes_{0};
  std::atomic<uint64_t> asked_{0};
  std::atomic<bool> requested_{false};
};

}  // namespace pgtlsmon::exporter
