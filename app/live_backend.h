// app/live_backend.h: the live capture back ends behind one interface (libpcap, eBPF).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "app/watch.h"
#include "capture/packet_source.h"
#include "exporter/metrics.h"
#include "parser/flow_tracker.h"

namespace pgtlsmon::app {

class LiveBackend {
 public:
  virtual ~LiveBackend() = default;
  virtual std::string kind() const = 0;  // "pcap" or "ebpf", pgtlsmon_build_info{capture}
  // For the log: the kind and, for eBPF, the attach point.
  virtual std::string description() const { return kind(); }
  // Capabilities (CAP_* numbers) the back end still needs once open; all others are dropped.
  virtual std::vector<int> caps_to_keep() const { return {}; }
  // Waits at most timeout_ms for a packet; false when none came.
  virtual absl::StatusOr<bool> Next(capture::RawPacket* pkt, int timeout_ms) = 0;
  // The back end's own counters: source label, drops by reason, packets it skipped.
  virtual exporter::CaptureSourceStats Stats() = 0;
  // The longest a captured packet may wait in the kernel before Next() can return it (the
  // ring's block timeout): the drain at stop waits this long for stragglers.
  virtual int max_delivery_delay_ms() const { return 0; }
  // The connection's record is final: the back end may stop delivering its payload.
  virtual void MarkDone(const parser::FlowKey& /*key*/) {}
};

// The eBPF back end (app/ebpf_backend.cc).
absl::StatusOr<std::unique_ptr<LiveBackend>> OpenEbpf(const WatchOptions& opts);

// Opens the back end opts.capture asks for. With "auto", a failure to load eBPF is explained
// in *note and libpcap is used instead.
absl::StatusOr<std::unique_ptr<LiveBackend>> OpenLiveBackend(const WatchOptions& opts,
                                                             std::string* note);

}  // namespace pgtlsmon::app
