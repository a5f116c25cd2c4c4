// capture/live_source.cc: see live_source.h.
#include "capture/live_source.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "capture/bpf_source.h"
#include "capture/bpf_tc_source.h"
#include "capture/pcap_source.h"

namespace pgtlsmon::capture {

FlowTuple FlowTuple::From(std::span<const uint8_t> saddr, uint16_t sport,
                          std::span<const uint8_t> daddr, uint16_t dport) {
  auto to16 = [](std::span<const uint8_t> a) {
    std::array<uint8_t, 16> out{};
    if (a.size() == 16) {
      std::copy(a.begin(), a.end(), out.begin());
    } else if (a.size() == 4) {
      out[10] = 0xff;
      out[11] = 0xff;
      std::copy(a.begin(), a.end(), out.begin() + 12);
    }
    return out;
  };
  FlowTuple t;
  t.saddr = to16(saddr);
  t.daddr = to16(daddr);
  t.sport = sport;
  t.dport = dport;
  return t;
}

LiveStats LiveSource::Counters() {
  std::lock_guard<std::mutex> lock(counters_mu_);
  absl::StatusOr<LiveStats> read = ReadCounters();
  if (read.ok()) {
    last_counters_ = *std::move(read);
  } else {
    ++counter_read_errors_;
    if (last_counters_.source.empty()) last_counters_.source = std::string(kind());
  }
  last_counters_.read_errors = counter_read_errors_;
  return last_counters_;
}

absl::StatusOr<bool> LiveSource::Next(RawPacket* pkt) {
  while (!stop_requested()) {
    auto r = NextWithTimeout(pkt, kStopPollMs);
    if (!r.ok() || *r) return r;
  }
  return false;
}

namespace {

// Source (BpfSource, BpfTcSource) with its own Config and the common part from `cfg`.
template <typename Source, typename Config>
absl::StatusOr<std::unique_ptr<LiveSource>> CreateEbpf(const LiveSourceConfig& cfg) {
  Config ec;
  ec.interface = cfg.interface;
  ec.any_port = cfg.any_port;
  ec.ports = cfg.ports;
  ec.ring_bytes = cfg.buffer_bytes;
  ec.vxlan_ports = cfg.vxlan_ports;
  ec.geneve_ports = cfg.geneve_ports;
  auto src = Source::Create(ec);
  if (!src.ok()) return src.status();
  return std::unique_ptr<LiveSource>(std::move(*src));
}

absl::StatusOr<std::unique_ptr<LiveSource>> OpenEbpf(const LiveSourceConfig& cfg) {
  if (cfg.ebpf_attach == "tc") return CreateEbpf<BpfTcSource, BpfTcConfig>(cfg);
  return CreateEbpf<BpfSource, BpfConfig>(cfg);
}

absl::StatusOr<std::unique_ptr<LiveSource>> OpenPcap(const LiveSourceConfig& cfg) {
  std::vector<uint16_t> tunnel_udp_ports = cfg.vxlan_ports;
  tunnel_udp_ports.insert(tunnel_udp_ports.end(), cfg.geneve_ports.begin(), cfg.geneve_ports.end());
  auto src = PcapLiveSource::Open(cfg.interface,
                                  cfg.any_port ? std::span<const uint16_t>() : std::span(cfg.ports),
                                  cfg.buffer_bytes, tunnel_udp_ports);
  if (!src.ok()) return src.status();
  return std::unique_ptr<LiveSource>(std::move(*src));
}

}  // namespace

absl::StatusOr<std::unique_ptr<LiveSource>> OpenLiveSource(const LiveSourceConfig& cfg,
                                                           std::string* note) {
  if (cfg.backend == "pcap") return OpenPcap(cfg);
  auto ebpf = OpenEbpf(cfg);
  if (ebpf.ok() || cfg.backend == "ebpf") return ebpf;
  *note = absl::StrCat("eBPF capture unavailable (", ebpf.status().message(),
                       "); falling back to libpcap");
  return OpenPcap(cfg);
}

}  // namespace pgtlsmon::capture
