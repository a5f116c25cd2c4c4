// capture/bpf_source.cc: see bpf_source.h. Without PGTLS_HAVE_BPF (PGTLS_BUILD_BPF=OFF, no
// skeleton) Create() returns Unimplemented and the rest is unreachable.
#include "capture/bpf_source.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

#ifdef PGTLS_HAVE_BPF
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <fstream>
#include <mutex>

#include "capture.skel.h"
#endif

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

// Mirrors pgtls_flow_key_init (bpf/parse_helpers.h): the smaller (address, port) is "lo".
abi::pgtls_flow_key BpfSource::MakeKey(const FlowTuple& flow) {
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

#ifndef PGTLS_HAVE_BPF

struct BpfSource::Impl {};
BpfSource::BpfSource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BpfSource::~BpfSource() = default;
absl::StatusOr<std::unique_ptr<BpfSource>> BpfSource::Create(const BpfConfig&) {
  return absl::UnimplementedError("eBPF capture: pgtlsmon was built without it (PGTLS_BUILD_BPF)");
}
absl::StatusOr<bool> BpfSource::Next(RawPacket*) { return false; }
absl::StatusOr<bool> BpfSource::NextWithTimeout(RawPacket*, int) { return false; }
int BpfSource::fd() const { return -1; }
absl::Status BpfSource::MarkDone(const FlowTuple&) { return absl::UnimplementedError("no eBPF"); }
absl::StatusOr<abi::pgtls_flow_value> BpfSource::LookupFlow(const FlowTuple&) const {
  return absl::UnimplementedError("no eBPF");
}
absl::StatusOr<BpfStats> BpfSource::Stats() { return absl::UnimplementedError("no eBPF"); }
namespace bpf_maps {
absl::Status MarkDone(int, const FlowTuple&) { return absl::UnimplementedError("no eBPF"); }
absl::StatusOr<abi::pgtls_flow_value> LookupFlow(int, const FlowTuple&) {
  return absl::UnimplementedError("no eBPF");
}
absl::Status ReadCounters(int, int, BpfStats*) { return absl::UnimplementedError("no eBPF"); }
}  // namespace bpf_maps

#else  // PGTLS_HAVE_BPF

namespace {

struct SkelDeleter {
  void operator()(capture_bpf* s) const { capture_bpf__destroy(s); }
};
using SkelPtr = std::unique_ptr<capture_bpf, SkelDeleter>;

constexpr uint32_t kMinBlockBytes = uint32_t{1} << 20;
constexpr uint32_t kFrameBytes = 2048;  // V3 packs frames by size; this only fixes tp_frame_nr
constexpr int kStopPollMs = 100;

absl::Status Errno(int err, const std::string& what) {
  return absl::ErrnoToStatus(err, absl::StrCat("eBPF capture: ", what));
}

// What loading the program needs: CAP_BPF (bpf() itself, maps) and CAP_PERFMON (without it
// the verifier refuses the program's stack pointer arithmetic: "pointer arithmetic ...
// prohibited for !root"), or CAP_SYS_ADMIN for both.
std::string MissingLoadCaps() { return bpf_maps::MissingCapabilities(false); }

// libbpf's messages while loading, held back so that a plain lack of privilege is reported in
// one line instead of libbpf's probe errors and a verifier log.
std::string* g_libbpf_log = nullptr;

int BufferLibbpf(enum libbpf_print_level level, const char* fmt, va_list ap) {
  if (level == LIBBPF_DEBUG || g_libbpf_log == nullptr) return 0;
  va_list ap2;
  va_copy(ap2, ap);
  const int n = std::vsnprintf(nullptr, 0, fmt, ap2);  // the verifier log can be long
  va_end(ap2);
  if (n <= 0) return n;
  const size_t at = g_libbpf_log->size();
  g_libbpf_log->resize(at + static_cast<size_t>(n) + 1);
  std::vsnprintf(g_libbpf_log->data() + at, static_cast<size_t>(n) + 1, fmt, ap);
  g_libbpf_log->resize(at + static_cast<size_t>(n));  // libbpf's text has its "libbpf: " prefix
  return n;
}

// A BPF load failure, with the privilege or kernel feature that is most likely missing.
absl::Status LoadError(int err) {
  if (err == EPERM || err == EACCES) {
    if (std::string missing = MissingLoadCaps(); !missing.empty()) {
      return Errno(err, absl::StrCat("loading the socket filter needs CAP_BPF and CAP_PERFMON "
                                     "(or CAP_SYS_ADMIN); this process lacks ",
                                     missing, " (run as root or grant capabilities)"));
    }
  }
  switch (err) {
    case EPERM:
    case EACCES:
      return Errno(err,
                   "loading the socket filter was refused although CAP_BPF and CAP_PERFMON are "
                   "present: the verifier rejected the program (see the libbpf log above), or "
                   "a security module denies bpf()");
    case EINVAL:
    case E2BIG:
    case ENOTSUP:
    case ENOSYS:
      return Errno(err,
                   "the kernel rejected the program or its maps (needs Linux >= 5.x with BPF "
                   "LRU hash and per-CPU maps; see the libbpf log above)");
    default:
      return Errno(err, "loading the BPF object");
  }
}

uint32_t RoundUpPow2(uint64_t v) {
  uint64_t p = 1;
  while (p < v) p <<= 1;
  return static_cast<uint32_t>(std::min<uint64_t>(p, uint64_t{1} << 30));
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void reset(int fd) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

class Mmap {
 public:
  Mmap() = default;
  Mmap(void* p, size_t len) : p_(p), len_(len) {}
  ~Mmap() {
    if (p_ != nullptr) munmap(p_, len_);
  }
  Mmap(const Mmap&) = delete;
  Mmap& operator=(const Mmap&) = delete;
  uint8_t* bytes() const { return static_cast<uint8_t*>(p_); }

 private:
  void* p_ = nullptr;
  size_t len_ = 0;
};

template <typename T>
T* At(uint8_t* base, size_t off) {
  return static_cast<T*>(static_cast<void*>(base + off));  // NOLINT: ring layout is the kernel's
}

}  // namespace

struct BpfSource::Impl {
  SkelPtr skel;
  Fd sock;
  std::unique_ptr<Mmap> ring;
  uint32_t block_bytes = 0;
  uint32_t block_nr = 0;
  // Reader state (one reading thread).
  uint32_t cur_block = 0;
  bool holding = false;  // cur_block belongs to us until released
  uint32_t pkts_left = 0;
  size_t pkt_off = 0;  // offset of the next tpacket3_hdr in the ring
  // Ring statistics reset on each PACKET_STATISTICS read, so they accumulate here.
  std::mutex stats_mu;
  uint64_t ring_packets = 0;
  uint64_t ring_drops = 0;
  uint64_t ring_freeze_q_cnt = 0;
  std::atomic<uint64_t> polls{0};
  std::atomic<uint64_t> wakeups{0};

  tpacket_block_desc* Block(uint32_t i) const {
    return At<tpacket_block_desc>(ring->bytes(), size_t{i} * block_bytes);
  }
  void Release() {
    __atomic_store_n(&Block(cur_block)->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
    cur_block = (cur_block + 1) % block_nr;
    holding = false;
  }
};

BpfSource::BpfSource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BpfSource::~BpfSource() = default;  // socket closed before the skeleton: Impl member order

absl::StatusOr<std::unique_ptr<BpfSource>> BpfSource::Create(const BpfConfig& cfg) {
  if (cfg.ports.size() > PGTLS_MAX_PORTS) {
    return absl::InvalidArgumentError(absl::StrCat("eBPF capture: at most ", PGTLS_MAX_PORTS,
                                                   " ports (got ", cfg.ports.size(),
                                                   "); use --ports any"));
  }
  if (cfg.ports.empty() && !cfg.any_port) {
    return absl::InvalidArgumentError("eBPF capture: no ports to monitor");
  }
  if (cfg.per_dir_cap == 0 || cfg.per_dir_cap > (uint32_t{16} << 20)) {
    return absl::InvalidArgumentError("eBPF capture: per-direction cap must be 1..16 MiB");
  }
  unsigned ifindex = 0;
  if (cfg.interface != "any" && !cfg.interface.empty()) {
    ifindex = if_nametoindex(cfg.interface.c_str());
    if (ifindex == 0) {
      return Errno(errno, absl::StrCat("interface ", cfg.interface));
    }
  }

  // libbpf's messages go to stderr, unless the failure is a plain lack of privilege.
  std::string libbpf_log;
  g_libbpf_log = &libbpf_log;
  const libbpf_print_fn_t old_print = libbpf_set_print(BufferLibbpf);
  struct RestorePrint {
    std::string* log;
    libbpf_print_fn_t old;
    bool quiet = false;
    ~RestorePrint() {
      libbpf_set_print(old);
      g_libbpf_log = nullptr;
      if (!quiet) std::fputs(log->c_str(), stderr);
    }
  } restore{&libbpf_log, old_print};

  auto impl = std::make_unique<Impl>();
  impl->skel.reset(capture_bpf__open());
  if (!impl->skel) return Errno(errno, "opening the BPF skeleton (capture_bpf__open)");
  auto* ro = impl->skel->rodata;
  if (ro->cfg_abi_version != PGTLS_ABI_VERSION) {
    return absl::FailedPreconditionError(
        absl::StrCat("eBPF capture: BPF object ABI version ", ro->cfg_abi_version,
                     " but user space expects ", PGTLS_ABI_VERSION, " (stale build?)"));
  }
  for (size_t i = 0; i < PGTLS_MAX_PORTS; ++i) {
    ro->cfg_ports[i] = i < cfg.ports.size() ? cfg.ports[i] : 0;
  }
  ro->cfg_nports = static_cast<uint32_t>(cfg.ports.size());
  ro->cfg_any_port = cfg.any_port ? 1 : 0;
  ro->cfg_per_dir_cap = cfg.per_dir_cap;
  if (int err = bpf_map__set_max_entries(impl->skel->maps.flows_lru,
                                         std::max<uint32_t>(cfg.flow_entries, 16));
      err != 0) {
    return Errno(-err, "sizing the flow map");
  }
  if (int err = capture_bpf__load(impl->skel.get()); err != 0) {
    restore.quiet = (-err == EPERM || -err == EACCES) && !MissingLoadCaps().empty();
    return LoadError(-err);
  }

  // Socket with protocol 0 sees nothing until bind(): filter and ring are in place first.
  impl->sock.reset(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
  if (impl->sock.get() < 0) {
    const int e = errno;
    if (e == EPERM || e == EACCES) {
      return Errno(e, "AF_PACKET socket needs CAP_NET_RAW (run as root or grant capabilities)");
    }
    return Errno(e, "socket(AF_PACKET)");
  }
  const int s = impl->sock.get();
  int version = TPACKET_V3;
  if (setsockopt(s, SOL_PACKET, PACKET_VERSION, &version, sizeof(version)) != 0) {
    return Errno(errno, "PACKET_VERSION TPACKET_V3");
  }
  int prog_fd = bpf_program__fd(impl->skel->progs.pgtls_capture);
  if (setsockopt(s, SOL_SOCKET, SO_ATTACH_BPF, &prog_fd, sizeof(prog_fd)) != 0) {
    return Errno(errno, "SO_ATTACH_BPF");
  }

  // A block must hold the biggest frame the program passes: headers + per_dir_cap payload.
  impl->block_bytes = std::max(kMinBlockBytes, RoundUpPow2(uint64_t{cfg.per_dir_cap} + 8192));
  impl->block_nr = static_cast<uint32_t>(
      std::max<size_t>(2, (cfg.ring_bytes + impl->block_bytes - 1) / impl->block_bytes));
  tpacket_req3 req{};
  req.tp_block_size = impl->block_bytes;
  req.tp_block_nr = impl->block_nr;
  req.tp_frame_size = kFrameBytes;
  req.tp_frame_nr = (impl->block_bytes / kFrameBytes) * impl->block_nr;
  req.tp_retire_blk_tov = std::max<uint32_t>(cfg.block_timeout_ms, 1);
  if (setsockopt(s, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) != 0) {
    return Errno(errno, absl::StrCat("PACKET_RX_RING (", impl->block_nr, " blocks of ",
                                     impl->block_bytes, " bytes)"));
  }
  const size_t ring_len = size_t{impl->block_bytes} * impl->block_nr;
  void* p = mmap(nullptr, ring_len, PROT_READ | PROT_WRITE, MAP_SHARED, s, 0);
  if (p == MAP_FAILED) return Errno(errno, "mmap of the packet ring");
  impl->ring = std::make_unique<Mmap>(p, ring_len);

  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = static_cast<int>(ifindex);
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
  if (bind(s, reinterpret_cast<const sockaddr*>(&sll), sizeof(sll)) != 0) {
    return Errno(errno, absl::StrCat("bind to interface ", cfg.interface));
  }
  return std::unique_ptr<BpfSource>(new BpfSource(std::move(impl)));
}

int BpfSource::fd() const { return impl_->sock.get(); }

absl::StatusOr<bool> BpfSource::Next(RawPacket* pkt) {
  while (!stop_.load(std::memory_order_relaxed)) {
    auto r = NextWithTimeout(pkt, kStopPollMs);
    if (!r.ok() || *r) return r;
  }
  return false;
}

absl::StatusOr<bool> BpfSource::NextWithTimeout(RawPacket* pkt, int timeout_ms) {
  Impl& im = *impl_;
  bool polled = false;
  for (;;) {
    if (im.holding && im.pkts_left == 0) im.Release();
    if (!im.holding) {
      tpacket_block_desc* b = im.Block(im.cur_block);
      if ((__atomic_load_n(&b->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER) == 0) {
        if (polled || timeout_ms == 0) return false;
        pollfd pfd{im.sock.get(), POLLIN | POLLERR, 0};
        const int n = poll(&pfd, 1, timeout_ms);
        if (n < 0 && errno != EINTR) return Errno(errno, "poll on the packet ring");
        im.polls.fetch_add(1, std::memory_order_relaxed);
        if (n > 0) im.wakeups.fetch_add(1, std::memory_order_relaxed);
        polled = true;
        continue;
      }
      im.holding = true;
      im.pkts_left = b->hdr.bh1.num_pkts;
      im.pkt_off = size_t{im.cur_block} * im.block_bytes + b->hdr.bh1.offset_to_first_pkt;
      continue;
    }
    const auto* h = At<tpacket3_hdr>(im.ring->bytes(), im.pkt_off);
    const auto* sll =
        At<sockaddr_ll>(im.ring->bytes(), im.pkt_off + TPACKET_ALIGN(sizeof(tpacket3_hdr)));
    const uint8_t* frame = im.ring->bytes() + im.pkt_off + h->tp_mac;  // NOLINT: ring layout
    uint32_t caplen = h->tp_snaplen;
    uint32_t wire_len = h->tp_len;
    uint32_t linktype = kLinkEthernet;
    if (sll->sll_hatype != ARPHRD_ETHER && sll->sll_hatype != ARPHRD_LOOPBACK) {
      // No Ethernet header: hand over the IP packet (for tun-like devices tp_net == tp_mac).
      const uint32_t l2 = h->tp_net >= h->tp_mac ? h->tp_net - h->tp_mac : 0;
      frame += std::min(l2, caplen);  // NOLINT: ring layout
      caplen -= std::min(l2, caplen);
      wire_len -= std::min(l2, wire_len);
      linktype = kLinkRaw;
    }
    pkt->ts_ns = uint64_t{h->tp_sec} * 1000000000u + h->tp_nsec;
    pkt->caplen = caplen;
    pkt->wire_len = wire_len;
    pkt->linktype = linktype;
    pkt->data = std::span<const uint8_t>(frame, caplen);
    im.pkt_off += h->tp_next_offset;
    --im.pkts_left;
    return true;
  }
}

namespace bpf_maps {

std::string MissingCapabilities(bool net_admin) {
  constexpr int kCapNetAdmin = 12, kCapSysAdmin = 21, kCapPerfmon = 38, kCapBpf = 39;
  std::ifstream in("/proc/self/status");
  std::string line;
  std::optional<uint64_t> eff;
  while (std::getline(in, line)) {
    if (line.rfind("CapEff:", 0) == 0) eff = std::stoull(line.substr(7), nullptr, 16);
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

absl::Status MarkDone(int map_fd, const FlowTuple& flow) {
  const abi::pgtls_flow_key key = BpfSource::MakeKey(flow);
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
  return Errno(errno, "marking a flow done in the flow map");
}

absl::StatusOr<abi::pgtls_flow_value> LookupFlow(int map_fd, const FlowTuple& flow) {
  const abi::pgtls_flow_key key = BpfSource::MakeKey(flow);
  abi::pgtls_flow_value v{};
  if (bpf_map_lookup_elem(map_fd, &key, &v) != 0) {
    if (errno == ENOENT) return absl::NotFoundError("eBPF capture: flow not in the flow map");
    return Errno(errno, "flow map lookup");
  }
  return v;
}

namespace {

// Sums each slot of a per-CPU array of __u64.
absl::Status SumPerCpu(int map_fd, const char* name, std::span<uint64_t> out) {
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return Errno(-ncpu, "counting possible CPUs");
  std::vector<uint64_t> vals(static_cast<size_t>(ncpu));
  for (uint32_t i = 0; i < out.size(); ++i) {
    if (bpf_map_lookup_elem(map_fd, &i, vals.data()) != 0) {
      return Errno(errno, absl::StrCat("reading per-CPU map ", name));
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
  return absl::OkStatus();
}

}  // namespace bpf_maps

absl::Status BpfSource::MarkDone(const FlowTuple& flow) {
  return bpf_maps::MarkDone(bpf_map__fd(impl_->skel->maps.flows_lru), flow);
}

absl::StatusOr<abi::pgtls_flow_value> BpfSource::LookupFlow(const FlowTuple& flow) const {
  return bpf_maps::LookupFlow(bpf_map__fd(impl_->skel->maps.flows_lru), flow);
}

absl::StatusOr<BpfStats> BpfSource::Stats() {
  BpfStats out;
  if (auto s = bpf_maps::ReadCounters(bpf_map__fd(impl_->skel->maps.stats_pcpu),
                                      bpf_map__fd(impl_->skel->maps.drops_pcpu), &out);
      !s.ok()) {
    return s;
  }
  out.polls = impl_->polls.load(std::memory_order_relaxed);
  out.wakeups = impl_->wakeups.load(std::memory_order_relaxed);

  tpacket_stats_v3 ps{};
  socklen_t len = sizeof(ps);
  std::lock_guard<std::mutex> lock(impl_->stats_mu);
  if (getsockopt(impl_->sock.get(), SOL_PACKET, PACKET_STATISTICS, &ps, &len) != 0) {
    return Errno(errno, "PACKET_STATISTICS");
  }
  impl_->ring_packets += ps.tp_packets;
  impl_->ring_drops += ps.tp_drops;
  impl_->ring_freeze_q_cnt += ps.tp_freeze_q_cnt;
  out.ring_packets = impl_->ring_packets;
  out.ring_drops = impl_->ring_drops;
  out.ring_freeze_q_cnt = impl_->ring_freeze_q_cnt;
  return out;
}

#endif  // PGTLS_HAVE_BPF

}  // namespace pgtlsmon::capture
