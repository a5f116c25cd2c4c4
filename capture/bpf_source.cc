// capture/bpf_source.cc: see bpf_source.h. Without PGTLS_HAVE_BPF (PGTLS_BUILD_BPF=OFF, no
// skeleton) Create() returns Unimplemented and the rest is unreachable.
#include "capture/bpf_source.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
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

#include <cstdio>
#include <mutex>

#include "capture.skel.h"
#endif

namespace pgtlsmon::capture {

#ifndef PGTLS_HAVE_BPF

struct BpfSource::Impl {};
BpfSource::BpfSource(std::unique_ptr<Impl> impl, const BpfConfig& cfg)
    : EbpfSource(cfg.interface), impl_(std::move(impl)), block_timeout_ms_(cfg.block_timeout_ms) {}
BpfSource::~BpfSource() = default;
absl::StatusOr<std::unique_ptr<BpfSource>> BpfSource::Create(const BpfConfig&) {
  return absl::UnimplementedError("eBPF capture: pgtlsmon was built without it (PGTLS_BUILD_BPF)");
}
absl::StatusOr<bool> BpfSource::NextWithTimeout(RawPacket*, int) { return false; }
int BpfSource::fd() const { return -1; }
absl::StatusOr<BpfStats> BpfSource::Stats() { return absl::UnimplementedError("no eBPF"); }

#else  // PGTLS_HAVE_BPF

namespace {

struct SkelDeleter {
  void operator()(capture_bpf* s) const { capture_bpf__destroy(s); }
};
using SkelPtr = std::unique_ptr<capture_bpf, SkelDeleter>;

constexpr uint32_t kMinBlockBytes = uint32_t{1} << 20;
constexpr uint32_t kFrameBytes = 2048;  // V3 packs frames by size; this only fixes tp_frame_nr
constexpr absl::string_view kErr = "eBPF capture";

absl::Status Errno(int err, const std::string& what) { return bpf_load::Errno(kErr, err, what); }

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
  // NOLINTNEXTLINE(cppcoreguidelines-pro-bounds-pointer-arithmetic): the kernel's ring layout
  return static_cast<T*>(static_cast<void*>(base + off));
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

BpfSource::BpfSource(std::unique_ptr<Impl> impl, const BpfConfig& cfg)
    : EbpfSource(cfg.interface), impl_(std::move(impl)), block_timeout_ms_(cfg.block_timeout_ms) {
  SetMaps(bpf_map__fd(impl_->skel->maps.flows_lru), bpf_map__fd(impl_->skel->maps.stats_pcpu),
          bpf_map__fd(impl_->skel->maps.drops_pcpu));
}
BpfSource::~BpfSource() = default;  // socket closed before the skeleton: Impl member order

absl::StatusOr<std::unique_ptr<BpfSource>> BpfSource::Create(const BpfConfig& cfg) {
  if (absl::Status st = bpf_load::CheckConfig(cfg); !st.ok()) return st;
  unsigned ifindex = 0;
  if (cfg.interface != "any" && !cfg.interface.empty()) {
    ifindex = if_nametoindex(cfg.interface.c_str());
    if (ifindex == 0) {
      return Errno(errno, absl::StrCat("interface ", cfg.interface));
    }
  }

  // libbpf's messages go to stderr, unless the failure is a plain lack of privilege.
  bpf_load::LibbpfLog libbpf_log;
  auto impl = std::make_unique<Impl>();
  impl->skel.reset(capture_bpf__open());
  if (!impl->skel) return Errno(errno, "opening the BPF skeleton (capture_bpf__open)");
  if (absl::Status st = bpf_load::Configure(impl->skel->rodata, cfg); !st.ok()) return st;
  if (int err = bpf_map__set_max_entries(impl->skel->maps.flows_lru,
                                         std::max<uint32_t>(cfg.flow_entries, 16));
      err != 0) {
    return Errno(-err, "sizing the flow map");
  }
  if (int err = capture_bpf__load(impl->skel.get()); err != 0) {
    // What loading needs: CAP_BPF (bpf() itself, maps) and CAP_PERFMON (without it the
    // verifier refuses the program's stack pointer arithmetic: "pointer arithmetic ...
    // prohibited for !root"), or CAP_SYS_ADMIN for both.
    if ((-err == EPERM || -err == EACCES) && !bpf_maps::MissingCapabilities(false).empty()) {
      libbpf_log.Quiet();
    }
    return bpf_load::LoadError(kErr, -err, "loading the socket filter", false);
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
  return std::unique_ptr<BpfSource>(new BpfSource(std::move(impl), cfg));
}

int BpfSource::fd() const { return impl_->sock.get(); }

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
    // NOLINTNEXTLINE(cppcoreguidelines-pro-bounds-pointer-arithmetic): the kernel's ring layout
    const uint8_t* frame = im.ring->bytes() + im.pkt_off + h->tp_mac;
    uint32_t caplen = h->tp_snaplen;
    uint32_t wire_len = h->tp_len;
    uint32_t linktype = kLinkEthernet;
    if (sll->sll_hatype != ARPHRD_ETHER && sll->sll_hatype != ARPHRD_LOOPBACK) {
      // No Ethernet header: hand over the IP packet (for tun-like devices tp_net == tp_mac).
      const uint32_t l2 = h->tp_net >= h->tp_mac ? h->tp_net - h->tp_mac : 0;
      frame += std::min(l2, caplen);  // NOLINT(cppcoreguidelines-pro-bounds-pointer-arithmetic)
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

absl::StatusOr<BpfStats> BpfSource::Stats() {
  BpfStats out;
  if (auto s = ReadKernelCounters(&out); !s.ok()) return s;
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
