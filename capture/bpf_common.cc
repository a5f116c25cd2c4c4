// capture/bpf_common.cc: see bpf_common.h. Without PGTLS_HAVE_BPF (PGTLS_BUILD_BPF=OFF, no
// skeleton) the map and loading calls return Unimplemented; nothing can reach them.
#include "capture/bpf_common.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <span>

#include "absl/strings/match.h"

#ifdef PGTLS_HAVE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#endif

namespace pgtlsmon::capture {

// Mirrors pgtls_flow_key_init (bpf/parse_helpers.h): the smaller (address, port) is "lo".
abi::pgtls_flow_key EbpfSource::MakeKey(const FlowTuple& flow) {
  const int c = std::memcmp(flow.saddr.data(), flow.daddr.data(), 16);
  const bool src_is_lo = c < 0 || (c == 0 && flow.sport <= flow.dport);
  abi::pgtls_flow_key key{};
  const auto& lo = src_is_lo ? flow.saddr : flow.daddr;
  const auto& hi = src_is_lo ? flow.daddr : flow.saddr;
  std::copy(lo.begin(), lo.end(), std::begin(key.addr_lo));
  std::copy(hi.begin(), hi.end(), std::begin(key.addr_hi));
  key.port_lo = src_is_lo ? flow.sport : flow.dport;
  key.port_hi = src_is_lo ? flow.dport : flow.sport;
  return key;
}

absl::Status EbpfSource::MarkDone(const FlowTuple& flow) {
  return bpf_maps::MarkDone(flows_fd_, flow);
}

absl::StatusOr<abi::pgtls_flow_value> EbpfSource::LookupFlow(const FlowTuple& flow) const {
  return bpf_maps::LookupFlow(flows_fd_, flow);
}

absl::Status EbpfSource::ReadKernelCounters(BpfStats* out) const {
  return bpf_maps::ReadCounters(stats_fd_, drops_fd_, out);
}

absl::StatusOr<LiveStats> EbpfSource::ReadCounters() {
  LiveStats s;
  s.source = "ebpf:" + interface_;
  auto st = Stats();
  if (!st.ok()) return st.status();
  s.skipped_packets = st->packets_skipped;
  s.skipped_bytes = st->bytes_skipped;
  for (size_t i = 0; i < st->drops.size(); ++i) {
    if (i == abi::PGTLS_DROP_RINGBUF_FULL) continue;  // "ring_full" below
    s.drops.emplace_back(abi::ToString(static_cast<abi::pgtls_drop_reason>(i)), st->drops[i]);
  }
  s.drops.emplace_back("ring_full", st->ring_drops);
  for (size_t i = 0; i < st->tunnel_packets.size(); ++i) {
    s.tunnel_packets.emplace_back(abi::ToString(static_cast<abi::pgtls_tunnel>(i)),
                                  st->tunnel_packets[i]);
  }
  return s;
}

namespace bpf_load {

absl::Status CheckConfig(const EbpfConfig& cfg) {
  if (cfg.ports.size() > PGTLS_MAX_PORTS) {
    return absl::InvalidArgumentError(absl::StrCat("eBPF capture: at most ", PGTLS_MAX_PORTS,
                                                   " ports (got ", cfg.ports.size(),
                                                   "); use --ports any"));
  }
  if (cfg.vxlan_ports.size() > PGTLS_MAX_PORTS || cfg.geneve_ports.size() > PGTLS_MAX_PORTS) {
    return absl::InvalidArgumentError(absl::StrCat(
        "eBPF capture: at most ", PGTLS_MAX_PORTS, " VXLAN and ", PGTLS_MAX_PORTS,
        " GENEVE ports (got ", cfg.vxlan_ports.size(), " and ", cfg.geneve_ports.size(), ")"));
  }
  if (cfg.ports.empty() && !cfg.any_port) {
    return absl::InvalidArgumentError("eBPF capture: no ports to monitor");
  }
  if (cfg.per_dir_cap == 0 || cfg.per_dir_cap > (uint32_t{16} << 20)) {
    return absl::InvalidArgumentError("eBPF capture: per-direction cap must be 1..16 MiB");
  }
  return absl::OkStatus();
}

absl::Status Errno(absl::string_view prefix, int err, absl::string_view what) {
  return absl::ErrnoToStatus(err, absl::StrCat(prefix, ": ", what));
}

absl::Status LoadError(absl::string_view prefix, int err, absl::string_view what, bool net_admin) {
  if (err == EPERM || err == EACCES) {
    if (std::string missing = bpf_maps::MissingCapabilities(net_admin); !missing.empty()) {
      return Errno(prefix, err,
                   absl::StrCat(what, " needs CAP_BPF", net_admin ? ", " : " and ", "CAP_PERFMON",
                                net_admin ? " and CAP_NET_ADMIN" : "",
                                " (or CAP_SYS_ADMIN); this process lacks ", missing,
                                " (run as root or grant capabilities)"));
    }
    return Errno(prefix, err,
                 absl::StrCat(what,
                              " was refused although the capabilities are present: the "
                              "verifier rejected the program (see the libbpf log above), "
                              "or a security module denies bpf()"));
  }
  switch (err) {
    case EINVAL:
    case E2BIG:
    case ENOTSUP:
    case ENOSYS:
      return Errno(prefix, err,
                   absl::StrCat(what,
                                ": the kernel rejected the program or its maps (needs "
                                "Linux >= 5.x with BPF LRU hash and per-CPU maps; see the "
                                "libbpf log above)"));
    default:
      return Errno(prefix, err, absl::StrCat(what, " (see the libbpf log above)"));
  }
}

}  // namespace bpf_load

namespace bpf_maps {

std::string MissingCapabilities(bool net_admin) {
  constexpr int kCapNetAdmin = 12;
  constexpr int kCapSysAdmin = 21;
  constexpr int kCapPerfmon = 38;
  constexpr int kCapBpf = 39;
  std::ifstream in("/proc/self/status");
  std::string line;
  std::optional<uint64_t> eff;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "CapEff:")) eff = std::stoull(line.substr(7), nullptr, 16);
  }
  if (!eff || (*eff >> kCapSysAdmin & 1) != 0) return "";
  std::string missing;
  for (auto [cap, name] : {std::pair{kCapBpf, "CAP_BPF"}, std::pair{kCapPerfmon, "CAP_PERFMON"},
                           std::pair{kCapNetAdmin, "CAP_NET_ADMIN"}}) {
    if (cap == kCapNetAdmin && !net_admin) continue;
    if ((*eff >> cap & 1) == 0) absl::StrAppend(&missing, missing.empty() ? "" : " and ", name);
  }
  return missing;
}

}  // namespace bpf_maps

#ifndef PGTLS_HAVE_BPF

namespace bpf_load {
LibbpfLog::LibbpfLog() = default;
LibbpfLog::~LibbpfLog() = default;
}  // namespace bpf_load
namespace bpf_maps {
absl::Status MarkDone(int, const FlowTuple&) { return absl::UnimplementedError("no eBPF"); }
absl::StatusOr<abi::pgtls_flow_value> LookupFlow(int, const FlowTuple&) {
  return absl::UnimplementedError("no eBPF");
}
absl::Status ReadCounters(int, int, BpfStats*) { return absl::UnimplementedError("no eBPF"); }
}  // namespace bpf_maps

#else  // PGTLS_HAVE_BPF

namespace bpf_load {
namespace {

// The log being collected (one load at a time) and the print function it replaced.
std::string* g_libbpf_log = nullptr;
libbpf_print_fn_t g_old_print = nullptr;

int BufferLibbpf(enum libbpf_print_level level, const char* fmt, va_list ap) {
  if (level == LIBBPF_DEBUG || g_libbpf_log == nullptr) return 0;
  va_list ap2;
  va_copy(ap2, ap);
  // ap2 is initialised by va_copy from libbpf's list; the analyzer cannot see that a va_list
  // parameter is initialised (a known false positive of valist.Uninitialized).
  // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
  const int n = std::vsnprintf(nullptr, 0, fmt, ap2);  // the verifier log can be long
  va_end(ap2);
  if (n <= 0) return n;
  const size_t at = g_libbpf_log->size();
  g_libbpf_log->resize(at + static_cast<size_t>(n) + 1);
  std::vsnprintf(std::span(*g_libbpf_log).subspan(at).data(), static_cast<size_t>(n) + 1, fmt, ap);
  g_libbpf_log->resize(at + static_cast<size_t>(n));  // libbpf's text has its "libbpf: " prefix
  return n;
}

}  // namespace

LibbpfLog::LibbpfLog() {
  g_libbpf_log = &text_;
  g_old_print = libbpf_set_print(BufferLibbpf);
}

LibbpfLog::~LibbpfLog() {
  libbpf_set_print(g_old_print);
  g_libbpf_log = nullptr;
  if (!quiet_) std::fputs(text_.c_str(), stderr);
}

}  // namespace bpf_load

namespace bpf_maps {

absl::Status MarkDone(int map_fd, const FlowTuple& flow) {
  const abi::pgtls_flow_key key = EbpfSource::MakeKey(flow);
  for (int attempt = 0; attempt < 2; ++attempt) {
    abi::pgtls_flow_value v{};
    if (bpf_map_lookup_elem(map_fd, &key, &v) == 0) {
      if (v.state == abi::PGTLS_FLOW_DONE) return absl::OkStatus();
      v.state = abi::PGTLS_FLOW_DONE;
      if (bpf_map_update_elem(map_fd, &key, &v, BPF_EXIST) == 0) return absl::OkStatus();
    } else {
      v.state = abi::PGTLS_FLOW_DONE;  // evicted or never seen: remember it as done
      if (bpf_map_update_elem(map_fd, &key, &v, BPF_NOEXIST) == 0) return absl::OkStatus();
    }
    if (errno != ENOENT && errno != EEXIST) break;  // else raced with the kernel: retry
  }
  return bpf_load::Errno("eBPF capture", errno, "marking a flow done in the flow map");
}

absl::StatusOr<abi::pgtls_flow_value> LookupFlow(int map_fd, const FlowTuple& flow) {
  const abi::pgtls_flow_key key = EbpfSource::MakeKey(flow);
  abi::pgtls_flow_value v{};
  if (bpf_map_lookup_elem(map_fd, &key, &v) != 0) {
    if (errno == ENOENT) return absl::NotFoundError("eBPF capture: flow not in the flow map");
    return bpf_load::Errno("eBPF capture", errno, "flow map lookup");
  }
  return v;
}

namespace {

// Sums each slot of a per-CPU array of __u64.
absl::Status SumPerCpu(int map_fd, const char* name, std::span<uint64_t> out) {
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return bpf_load::Errno("eBPF capture", -ncpu, "counting possible CPUs");
  std::vector<uint64_t> vals(static_cast<size_t>(ncpu));
  for (uint32_t i = 0; i < out.size(); ++i) {
    if (bpf_map_lookup_elem(map_fd, &i, vals.data()) != 0) {
      return bpf_load::Errno("eBPF capture", errno, absl::StrCat("reading per-CPU map ", name));
    }
    uint64_t sum = 0;
    for (uint64_t v : vals) sum += v;
    out[i] = sum;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ReadCounters(int stats_fd, int drops_fd, BpfStats* out) {
  std::array<uint64_t, abi::kNumStats> st{};
  if (auto s = SumPerCpu(stats_fd, "stats_pcpu", st); !s.ok()) return s;
  if (auto s = SumPerCpu(drops_fd, "drops_pcpu", out->drops); !s.ok()) return s;
  out->packets_seen = st[abi::PGTLS_STAT_PKTS_SEEN];
  out->bytes_seen = st[abi::PGTLS_STAT_BYTES_SEEN];
  out->packets_passed = st[abi::PGTLS_STAT_PKTS_PASSED];
  out->bytes_passed = st[abi::PGTLS_STAT_BYTES_PASSED];
  out->packets_skipped = st[abi::PGTLS_STAT_PKTS_SKIPPED];
  out->bytes_skipped = st[abi::PGTLS_STAT_BYTES_SKIPPED];
  out->packets_cut = st[abi::PGTLS_STAT_PKTS_CUT];
  out->packets_ignored = st[abi::PGTLS_STAT_PKTS_IGNORED];
  out->flows_created = st[abi::PGTLS_STAT_FLOWS_CREATED];
  for (size_t t = 0; t < abi::kNumTunnels; ++t) {
    out->tunnel_packets[t] = st[abi::PGTLS_STAT_TUNNEL_FIRST + t];
  }
  return absl::OkStatus();
}

}  // namespace bpf_maps

#endif  // PGTLS_HAVE_BPF

}  // namespace pgtlsmon::capture
