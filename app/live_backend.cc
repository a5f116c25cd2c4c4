#include "app/live_backend.h"

#include "capture/pcap_source.h"
#include "fmt/core.h"

namespace pgtlsmon::app {
namespace {

// libpcap's immediate mode uses TPACKET_V2, whose ring has fixed-size frames sized for the
// snap length (64 KiB+ each on lo): 32 MiB held ~480 packets, and the daemon woke once per
// packet. Under pgbench over TLS on 2 busy CPUs it dropped ~0.3% of the packets (handshakes
// among them) and spent 1 CPU-second per 10 s. Buffered mode (TPACKET_V3) packs packets into
// blocks handed over when full or after this timeout: a record goes out at most this late.
constexpr int kPcapBlockTimeoutMs = 50;

class PcapBackend final : public LiveBackend {
 public:
  explicit PcapBackend(std::unique_ptr<capture::PcapSource> src, std::string iface)
      : src_(std::move(src)), iface_(std::move(iface)) {}
  std::string kind() const override { return "pcap"; }
  int max_delivery_delay_ms() const override { return kPcapBlockTimeoutMs; }
  absl::StatusOr<bool> Next(capture::RawPacket* pkt, int timeout_ms) override {
    return src_->NextWithTimeout(pkt, timeout_ms);
  }
  exporter::CaptureSourceStats Stats() override {
    exporter::CaptureSourceStats s;
    s.source = "pcap:" + iface_;
    if (auto st = src_->Stats(); st.ok()) {
      s.drops.emplace_back("kernel", st->dropped);
      s.drops.emplace_back("interface", st->if_dropped);
    }
    return s;
  }

 private:
  std::unique_ptr<capture::PcapSource> src_;
  std::string iface_;
};

absl::StatusOr<std::unique_ptr<LiveBackend>> OpenPcap(const WatchOptions& opts) {
  capture::LiveOptions lo;
  lo.interface = opts.interface;
  lo.buffer_bytes = opts.buffer_mib << 20;
  lo.immediate = false;
  lo.poll_timeout_ms = kPcapBlockTimeoutMs;
  std::vector<uint16_t> tunnel_ports = opts.tracker.decap.vxlan_ports;
  tunnel_ports.insert(tunnel_ports.end(), opts.tracker.decap.geneve_ports.begin(),
                      opts.tracker.decap.geneve_ports.end());
  lo.filter = capture::BuildPortFilter(
      opts.tracker.any_port ? std::span<const uint16_t>() : std::span(opts.tracker.ports), false,
      tunnel_ports);
  auto src = capture::PcapSource::OpenLive(lo);
  if (!src.ok()) return src.status();
  return std::make_unique<PcapBackend>(std::move(*src), opts.interface);
}

}  // namespace

absl::StatusOr<std::unique_ptr<LiveBackend>> OpenLiveBackend(const WatchOptions& opts,
                                                             std::string* note) {
  if (opts.capture == "pcap") return OpenPcap(opts);
  auto ebpf = OpenEbpf(opts);
  if (ebpf.ok() || opts.capture == "ebpf") return ebpf;
  *note = fmt::format("eBPF capture unavailable ({}); falling back to libpcap",
                      std::string(ebpf.status().message()));
  return OpenPcap(opts);
}

}  // namespace pgtlsmon::app
