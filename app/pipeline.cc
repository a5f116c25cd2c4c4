// app/pipeline.cc: see pipeline.h.
#include "app/pipeline.h"

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
