// The eBPF back end: a kernel program passes only handshake bytes; once a connection's record is
// final, FlowTracker's on_final marks it done in the kernel and its payload stops crossing.
// Two attach points with the same program logic, flow map and counters (--ebpf-attach): a socket
// filter on an AF_PACKET ring (capture::BpfSource, the default) and a TC classifier writing to a
// BPF ring buffer (capture::BpfTcSource). Both export the same metrics: source "ebpf:<iface>",
// build_info capture="ebpf", the same drop reasons ("ring_full" is the TPACKET ring or the BPF
// ring buffer).
#include <linux/capability.h>

#include <span>
#include <type_traits>

#include "app/live_backend.h"
#include "capture/bpf_source.h"
#include "capture/bpf_tc_source.h"

namespace pgtlsmon::app {
namespace {

template <typename Source>
class EbpfBackend final : public LiveBackend {
 public:
  EbpfBackend(std::unique_ptr<Source> src, std::string iface, int delay_ms, std::string desc)
      : src_(std::move(src)),
        iface_(std::move(iface)),
        delay_ms_(delay_ms),
        desc_(std::move(desc)) {
    last_.source = "ebpf:" + iface_;
  }
  std::string kind() const override { return "ebpf"; }
  std::string description() const override { return desc_; }
  std::vector<int> caps_to_keep() const override {
    // The TC filters (or the clsact qdisc pgtlsmon added) are removed at exit: CAP_NET_ADMIN.
    if constexpr (std::is_same_v<Source, capture::BpfTcSource>) return {CAP_NET_ADMIN};
    return {};
  }
  int max_delivery_delay_ms() const override { return delay_ms_; }
  absl::StatusOr<bool> Next(capture::RawPacket* pkt, int timeout_ms) override {
    return src_->NextWithTimeout(pkt, timeout_ms);
  }
  exporter::CaptureSourceStats Stats() override {
    exporter::CaptureSourceStats s;
    s.source = "ebpf:" + iface_;
    auto st = src_->Stats();
    if (!st.ok()) {  // a failed map read: the last values, and an error counted, never zeros
      last_.read_errors = ++read_errors_;
      return last_;
    }
    s.read_errors = read_errors_;
    s.skipped_packets = st->packets_skipped;
    s.skipped_bytes = st->bytes_skipped;
    for (size_t i = 0; i < st->drops.size(); ++i) {
      if (i == capture::abi::PGTLS_DROP_RINGBUF_FULL) continue;  // "ring_full" below
      s.drops.emplace_back(capture::abi::ToString(static_cast<capture::abi::pgtls_drop_reason>(i)),
                           st->drops[i]);
    }
    s.drops.emplace_back("ring_full", st->ring_drops);
    last_ = s;
    return s;
  }
  void MarkDone(const parser::FlowKey& key) override {
    const auto lo = std::span(key.lo_ip.bytes).first(key.lo_ip.is_v6 ? 16 : 4);
    const auto hi = std::span(key.hi_ip.bytes).first(key.hi_ip.is_v6 ? 16 : 4);
    // A failure (the map entry could not be written) only costs copies, never records.
    (void)src_->MarkDone(capture::FlowTuple::From(lo, key.lo_port, hi, key.hi_port));
  }

 private:
  std::unique_ptr<Source> src_;
  std::string iface_;
  int delay_ms_;
  std::string desc_;
  exporter::CaptureSourceStats last_;  // the last successful read
  uint64_t read_errors_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<LiveBackend>> OpenEbpf(const WatchOptions& opts) {
  const size_t ring_bytes = static_cast<size_t>(opts.buffer_mib) << 20;
  if (opts.ebpf_attach == "tc") {
    capture::BpfTcConfig cfg;
    cfg.interface = opts.interface;
    cfg.any_port = opts.tracker.any_port;
    cfg.ports = opts.tracker.ports;
    cfg.ring_bytes = ring_bytes;
    auto src = capture::BpfTcSource::Create(cfg);
    if (!src.ok()) return src.status();
    std::string desc = (*src)->created_qdisc() ? "ebpf (tc, clsact qdisc added)"
                                               : "ebpf (tc, on the existing clsact qdisc)";
    return std::make_unique<EbpfBackend<capture::BpfTcSource>>(
        std::move(*src), opts.interface, static_cast<int>(cfg.poll_ms), std::move(desc));
  }
  capture::BpfConfig cfg;
  cfg.interface = opts.interface;
  cfg.any_port = opts.tracker.any_port;
  cfg.ports = opts.tracker.ports;
  cfg.ring_bytes = ring_bytes;
  auto src = capture::BpfSource::Create(cfg);
  if (!src.ok()) return src.status();
  return std::make_unique<EbpfBackend<capture::BpfSource>>(
      std::move(*src), opts.interface, static_cast<int>(cfg.block_timeout_ms), "ebpf (socket)");
}

}  // namespace pgtlsmon::app
