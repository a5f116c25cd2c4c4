// capture/pcap_source.cc: see pcap_source.h.
#include "capture/pcap_source.h"

#include <pcap/pcap.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace pgtlsmon::capture {
namespace {

// Closes a pcap_t on every early return of the factories.
struct PcapCloser {
  void operator()(pcap_t* p) const {
    if (p != nullptr) pcap_close(p);
  }
};
using PcapPtr = std::unique_ptr<pcap_t, PcapCloser>;

absl::Status InstallFilter(pcap_t* p, const std::string& name, const std::string& filter) {
  bpf_program prog{};
  if (pcap_compile(p, &prog, filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": bad filter \"", filter, "\": ", pcap_geterr(p)));
  }
  const int rc = pcap_setfilter(p, &prog);
  pcap_freecode(&prog);
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat(name, ": cannot install filter \"", filter, "\": ", pcap_geterr(p)));
  }
  return absl::OkStatus();
}

}  // namespace

std::string BuildPortFilter(std::span<const uint16_t> ports, bool vlan,
                            std::span<const uint16_t> tunnel_udp_ports) {
  std::string f;
  if (ports.empty()) {
    f = "tcp";
  } else {
    f = absl::StrJoin(ports, " or ", [](std::string* out, uint16_t port) {
      absl::StrAppend(out, "tcp port ", port);
    });
  }
  if (!tunnel_udp_ports.empty()) {
    absl::StrAppend(&f, " or proto 47 or ip proto 4 or ip proto 41 or ip6 proto 4 or ip6 proto 41");
    for (uint16_t port : tunnel_udp_ports) absl::StrAppend(&f, " or udp dst port ", port);
  }
  if (vlan) f = absl::StrCat("(", f, ") or (vlan and (", f, "))");
  return f;
}

PcapSource::PcapSource(pcap* handle, std::string name, bool live, int poll_timeout_ms)
    : handle_(handle), name_(std::move(name)), live_(live), poll_timeout_ms_(poll_timeout_ms) {
  linktype_ = static_cast<uint32_t>(pcap_datalink(handle_));
  nanos_ = pcap_get_tstamp_precision(handle_) == PCAP_TSTAMP_PRECISION_NANO;
  if (live_) fd_ = pcap_get_selectable_fd(handle_);
}

PcapSource::~PcapSource() {
  if (handle_ != nullptr) pcap_close(handle_);
}

absl::Status PcapSource::Error(absl::string_view what) const {
  return absl::InternalError(absl::StrCat(name_, ": ", what, ": ", pcap_geterr(handle_)));
}

absl::StatusOr<std::unique_ptr<PcapSource>> PcapSource::OpenLive(const LiveOptions& options) {
  const std::string& ifname = options.interface;
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  PcapPtr p(pcap_create(ifname.c_str(), errbuf));
  if (!p) return absl::NotFoundError(absl::StrCat(ifname, ": ", errbuf));
  auto setup_error = [&](absl::string_view call) {
    return absl::InvalidArgumentError(
        absl::StrCat(ifname, ": ", call, " failed: ", pcap_geterr(p.get())));
  };
  if (pcap_set_snaplen(p.get(), options.snaplen) != 0) return setup_error("pcap_set_snaplen");
  if (pcap_set_promisc(p.get(), options.promiscuous ? 1 : 0) != 0) {
    return setup_error("pcap_set_promisc");
  }
  if (pcap_set_buffer_size(p.get(), options.buffer_bytes) != 0) {
    return setup_error("pcap_set_buffer_size");
  }
  if (pcap_set_immediate_mode(p.get(), options.immediate ? 1 : 0) != 0) {
    return setup_error("pcap_set_immediate_mode");
  }
  // Without immediate mode, the timeout bounds how long packets wait in the kernel.
  if (pcap_set_timeout(p.get(), options.poll_timeout_ms > 0 ? options.poll_timeout_ms : 100) != 0) {
    return setup_error("pcap_set_timeout");
  }
  // Nanosecond timestamps where the platform has them; microseconds otherwise.
  (void)pcap_set_tstamp_precision(p.get(), PCAP_TSTAMP_PRECISION_NANO);

  const int rc = pcap_activate(p.get());
  if (rc < 0) {
    const char* detail = pcap_geterr(p.get());
    std::string msg = absl::StrCat(ifname, ": ", pcap_statustostr(rc));
    // pcap_geterr often repeats pcap_statustostr ("No such device exists"): say it once.
    if (const absl::string_view d = detail != nullptr ? detail : ""; !d.empty()) {
      msg = absl::StrContains(d, pcap_statustostr(rc)) ? absl::StrCat(ifname, ": ", detail)
                                                       : absl::StrCat(msg, ": ", detail);
    }
    switch (rc) {
      case PCAP_ERROR_PERM_DENIED:
        return absl::PermissionDeniedError(
            absl::StrCat(msg, " (needs CAP_NET_RAW, or run as root)"));
      case PCAP_ERROR_NO_SUCH_DEVICE:
        return absl::NotFoundError(msg);
      default:
        return absl::UnavailableError(msg);
    }
  }
  // rc > 0 is a warning (e.g. PCAP_WARNING_PROMISC_NOTSUP): the capture works.

  if (!options.filter.empty()) {
    if (absl::Status st = InstallFilter(p.get(), ifname, options.filter); !st.ok()) return st;
  }
  if (pcap_setnonblock(p.get(), 1, errbuf) != 0) {
    return absl::InternalError(absl::StrCat(ifname, ": pcap_setnonblock: ", errbuf));
  }
  return std::unique_ptr<PcapSource>(
      new PcapSource(p.release(), ifname, true, options.poll_timeout_ms));
}

absl::StatusOr<std::unique_ptr<PcapSource>> PcapSource::OpenOffline(const std::string& path,
                                                                    const std::string& filter) {
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  PcapPtr p(
      pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, errbuf));
  if (!p) return absl::InvalidArgumentError(absl::StrCat(path, ": ", errbuf));
  if (!filter.empty()) {
    if (absl::Status st = InstallFilter(p.get(), path, filter); !st.ok()) return st;
  }
  return std::unique_ptr<PcapSource>(new PcapSource(p.release(), path, false, 0));
}

absl::Status PcapSource::SetFilter(const std::string& filter) {
  return InstallFilter(handle_, name_, filter);  // "" compiles to "accept everything"
}

absl::StatusOr<bool> PcapSource::Next(RawPacket* pkt) {
  return NextWithTimeout(pkt, poll_timeout_ms_);
}

absl::StatusOr<bool> PcapSource::NextWithTimeout(RawPacket* pkt, int timeout_ms) {
  if (at_end_) return false;
  for (int attempt = 0; attempt < 2; ++attempt) {
    pcap_pkthdr* hdr = nullptr;
    const u_char* data = nullptr;
    const int rc = pcap_next_ex(handle_, &hdr, &data);
    if (rc == 1) {
      const auto frac = static_cast<uint64_t>(hdr->ts.tv_usec);
      pkt->ts_ns =
          static_cast<uint64_t>(hdr->ts.tv_sec) * 1000000000u + (nanos_ ? frac : frac * 1000u);
      pkt->caplen = hdr->caplen;
      pkt->wire_len = hdr->len < hdr->caplen ? hdr->caplen : hdr->len;
      pkt->linktype = linktype_;
      pkt->data = std::span<const uint8_t>(data, hdr->caplen);
      return true;
    }
    if (rc == PCAP_ERROR_BREAK) {  // end of file, or pcap_breakloop()
      if (!live_) at_end_ = true;
      return false;
    }
    if (rc < 0) return Error(live_ ? "capture failed" : "read failed");
    // rc == 0: live, nothing ready (non-blocking). Wait once for the descriptor, then retry.
    if (!live_ || attempt == 1 || timeout_ms == 0 || fd_ < 0) return false;
    pollfd pfd{fd_, POLLIN, 0};
    const int n = poll(&pfd, 1, timeout_ms);
    if (n < 0 && errno != EINTR) return absl::ErrnoToStatus(errno, absl::StrCat(name_, ": poll"));
    if (n <= 0) return false;
  }
  return false;
}

absl::StatusOr<CaptureStats> PcapSource::Stats() const {
  pcap_stat ps{};
  if (pcap_stats(handle_, &ps) != 0) return Error("pcap_stats");
  return CaptureStats{ps.ps_recv, ps.ps_drop, ps.ps_ifdrop};
}

void PcapSource::BreakLoop() { pcap_breakloop(handle_); }

namespace {

// libpcap's immediate mode uses TPACKET_V2, whose ring has fixed-size frames sized for the
// snap length (64 KiB+ each on lo): 32 MiB held ~480 packets, and the daemon woke once per
// packet. Under pgbench over TLS on 2 busy CPUs it dropped ~0.3% of the packets (handshakes
// among them) and spent 1 CPU-second per 10 s. Buffered mode (TPACKET_V3) packs packets into
// blocks handed over when full or after this timeout: a record goes out at most this late.
constexpr int kPcapBlockTimeoutMs = 50;

}  // namespace

absl::StatusOr<std::unique_ptr<PcapLiveSource>> PcapLiveSource::Open(
    const std::string& interface, std::span<const uint16_t> ports, size_t buffer_bytes,
    std::span<const uint16_t> tunnel_udp_ports) {
  LiveOptions lo;
  lo.interface = interface;
  lo.buffer_bytes =
      static_cast<int>(std::min<size_t>(buffer_bytes, std::numeric_limits<int>::max()));
  lo.immediate = false;
  lo.poll_timeout_ms = kPcapBlockTimeoutMs;
  lo.filter = BuildPortFilter(ports, false, tunnel_udp_ports);
  auto src = PcapSource::OpenLive(lo);
  if (!src.ok()) return src.status();
  return std::unique_ptr<PcapLiveSource>(new PcapLiveSource(std::move(*src), interface));
}

int PcapLiveSource::max_delivery_delay_ms() const { return kPcapBlockTimeoutMs; }

absl::StatusOr<LiveStats> PcapLiveSource::ReadCounters() {
  LiveStats s;
  s.source = "pcap:" + interface_;
  auto st = src_->Stats();
  if (!st.ok()) return st.status();
  s.drops.emplace_back("kernel", st->dropped);
  s.drops.emplace_back("interface", st->if_dropped);
  return s;
}

}  // namespace pgtlsmon::capture
