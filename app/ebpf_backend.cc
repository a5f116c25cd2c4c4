// The eBPF back end: a socket filter passes only handshake bytes; once a connection's record is
// final, FlowTracker's on_final marks it done in the kernel and its payload stops crossing.
#include <span>

#include "app/live_backend.h"
#include "capture/bpf_source.h"

namespace pgtlsmon::app {
namespace {

class EbpfBackend final : public LiveBackend {
 public:
  EbpfBackend(std::unique_ptr<capture::BpfSource> src, std::string iface, uint32_t block_timeout_ms)
      : src_(std::move(src)), iface_(std::move(iface)), block_timeout_ms_(block_timeout_ms) {}
  std::string kind() const override { return "ebpf"; }
  int max_delivery_delay_ms() const override { return static_cast<int>(block_timeout_ms_); }
  absl::StatusOr<bool> Next(capture::RawPacket* pkt, int timeout_ms) override {
    return src_->NextWithTimeout(pkt, timeout_ms);
  }
  exporter::CaptureSourceStats Stats() override {
    exporter::CaptureSourceStats s;
    s.source = "ebpf:" + iface_;
    auto st = src_->Stats();
    if (!st.ok()) return s;
    s.skipped_packets = st->packets_skipped;
    s.skipped_bytes = st->bytes_skipped;
    for (size_t i = 0; i < st->drops.size(); ++i) {
      s.drops.emplace_back(capture::abi::ToString(static_cast<capture::abi::pgtls_drop_reason>(i)),
                           st->drops[i]);
    }
    s.drops.emplace_back("ring_full", st->ring_drops);
    return s;
  }
  void MarkDone(const parser::FlowKey& key) override {
    const auto lo = std::span(key.lo_ip.bytes).first(key.lo_ip.is_v6 ? 16 : 4);
    const auto hi = std::span(key.hi_ip.bytes).first(key.hi_ip.is_v6 ? 16 : 4);
    // A failure (the map entry could not be written) only costs copies, never records.
    (void)src_->MarkDone(capture::FlowTuple::From(lo, key.lo_port, hi, key.hi_port));
  }

 private:
  std::unique_ptr<capture::BpfSource> src_;
  std::string iface_;
  uint32_t block_timeout_ms_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<LiveBackend>> OpenEbpf(const WatchOptions& opts) {
  capture::BpfConfig cfg;
  cfg.interface = opts.interface;
  cfg.any_port = opts.tracker.any_port;
  cfg.ports = opts.tracker.ports;
  cfg.ring_bytes = static_cast<size_t>(opts.buffer_mib) << 20;
  auto src = capture::BpfSource::Create(cfg);
  if (!src.ok()) return src.status();
  return std::make_unique<EbpfBackend>(std::move(*src), opts.interface, cfg.block_timeout_ms);
}

}  // namespace pgtlsmon::app
