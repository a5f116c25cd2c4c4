// capture/bpf_tc_source.cc: see bpf_tc_source.h. Without PGTLS_HAVE_BPF Create() returns
// Unimplemented and the rest is unreachable.
#include "capture/bpf_tc_source.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

#ifdef PGTLS_HAVE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/capability.h>
#include <net/if.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <span>

#include "capture_tc.skel.h"
#endif

namespace pgtlsmon::capture {

#ifndef PGTLS_HAVE_BPF

struct BpfTcSource::Impl {};
BpfTcSource::BpfTcSource(std::unique_ptr<Impl> impl, const BpfTcConfig& cfg)
    : EbpfSource(cfg.interface), impl_(std::move(impl)), poll_ms_(cfg.poll_ms) {}
BpfTcSource::~BpfTcSource() = default;
absl::StatusOr<std::unique_ptr<BpfTcSource>> BpfTcSource::Create(const BpfTcConfig&) {
  return absl::UnimplementedError("eBPF capture: pgtlsmon was built without it (PGTLS_BUILD_BPF)");
}
absl::StatusOr<bool> BpfTcSource::NextWithTimeout(RawPacket*, int) { return false; }
absl::StatusOr<BpfStats> BpfTcSource::Stats() { return absl::UnimplementedError("no eBPF"); }
std::string BpfTcSource::description() const { return "ebpf (tc)"; }
std::vector<int> BpfTcSource::caps_to_keep() const { return {}; }
bool BpfTcSource::created_qdisc() const { return false; }
int BpfTcSource::ingress_prog_fd() const { return -1; }
int BpfTcSource::egress_prog_fd() const { return -1; }

#else  // PGTLS_HAVE_BPF

namespace {

struct SkelDeleter {
  void operator()(capture_tc_bpf* s) const { capture_tc_bpf__destroy(s); }
};
struct RingDeleter {
  void operator()(ring_buffer* r) const { ring_buffer__free(r); }
};

// Records read from the ring are copied into a batch (ring_buffer__consume hands each one to a
// callback and releases it on return); reading stops once a batch holds this much.
constexpr size_t kMaxBatchBytes = size_t{4} << 20;

constexpr absl::string_view kErr = "eBPF capture (tc)";

absl::Status Errno(int err, const std::string& what) { return bpf_load::Errno(kErr, err, what); }

uint64_t RoundUpPow2(uint64_t v) {
  uint64_t p = 4096;
  while (p < v) p <<= 1;
  return std::min<uint64_t>(p, uint64_t{1} << 30);
}

int64_t NowNs(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// Warns on stderr that `what` failed with errno `err`. absl's errno text, unlike std::strerror,
// is safe from any thread (Detach runs from the destructor, on whichever thread owns the source).
void WarnErrno(int err, const std::string& what) {
  const absl::Status s = absl::ErrnoToStatus(err, what);
  std::fprintf(stderr, "pgtlsmon: %s\n", std::string(s.message()).c_str());
}

}  // namespace

struct BpfTcSource::Impl {
  std::unique_ptr<capture_tc_bpf, SkelDeleter> skel;
  std::unique_ptr<ring_buffer, RingDeleter> ring;
  std::string iface;
  bpf_tc_hook hook{};
  bool hook_valid = false;
  bool created_qdisc = false;
  bpf_tc_opts attached[2]{};  // ingress, egress; prog_fd 0 = not attached
  bool is_attached[2]{false, false};
  uint32_t poll_ms = 10;
  // Batch of records copied out of the ring: [pgtls_pkt_event][frame bytes], 8-byte aligned.
  std::vector<uint8_t> batch;
  size_t batch_off = 0;
  int64_t mono_to_real_ns = 0;
  std::atomic<uint64_t> records{0};
  std::atomic<uint64_t> polls{0};
  std::atomic<uint64_t> wakeups{0};

  static int OnRecord(void* ctx, void* data, size_t size) {
    auto* im = static_cast<Impl*>(ctx);
    if (size < sizeof(abi::pgtls_pkt_event)) return 0;
    const size_t at = im->batch.size();
    im->batch.resize(at + ((size + 7) & ~size_t{7}));
    std::memcpy(std::span(im->batch).subspan(at).data(), data, size);
    im->records.fetch_add(1, std::memory_order_relaxed);
    return im->batch.size() >= kMaxBatchBytes ? -ENOSPC : 0;  // this record is kept either way
  }

  void Detach() {
    if (!hook_valid) return;
    if (created_qdisc) {
      // Ours: removing the qdisc removes our filters with it.
      bpf_tc_hook h = hook;
      h.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
      if (int err = bpf_tc_hook_destroy(&h); err != 0 && err != -ENOENT && err != -ENODEV) {
        WarnErrno(-err, absl::StrCat("removing the clsact qdisc of ", iface));
      }
    } else {
      for (int i = 0; i < 2; ++i) {
        if (!is_attached[i]) continue;
        bpf_tc_hook h = hook;
        h.attach_point = i == 0 ? BPF_TC_INGRESS : BPF_TC_EGRESS;
        bpf_tc_opts o{};
        o.sz = sizeof(o);
        o.handle = attached[i].handle;
        o.priority = attached[i].priority;
        if (int err = bpf_tc_detach(&h, &o); err != 0 && err != -ENOENT && err != -ENODEV) {
          WarnErrno(-err, absl::StrCat("detaching the TC filter from ", iface));
        }
      }
    }
    hook_valid = false;
  }
  ~Impl() {
    ring.reset();
    Detach();
  }
};

BpfTcSource::BpfTcSource(std::unique_ptr<Impl> impl, const BpfTcConfig& cfg)
    : EbpfSource(cfg.interface), impl_(std::move(impl)), poll_ms_(cfg.poll_ms) {
  SetMaps(bpf_map__fd(impl_->skel->maps.flows_lru), bpf_map__fd(impl_->skel->maps.stats_pcpu),
          bpf_map__fd(impl_->skel->maps.drops_pcpu));
}
BpfTcSource::~BpfTcSource() = default;

absl::StatusOr<std::unique_ptr<BpfTcSource>> BpfTcSource::Create(const BpfTcConfig& cfg) {
  if (cfg.interface.empty() || cfg.interface == "any") {
    return absl::InvalidArgumentError(
        "eBPF capture (tc): a TC program attaches to one interface; 'any' needs the socket "
        "filter (--ebpf-attach socket) or one watcher per interface");
  }
  if (absl::Status st = bpf_load::CheckConfig(cfg); !st.ok()) return st;
  const unsigned ifindex = if_nametoindex(cfg.interface.c_str());
  if (ifindex == 0) return Errno(errno, absl::StrCat("interface ", cfg.interface));

  auto impl = std::make_unique<Impl>();
  impl->iface = cfg.interface;
  impl->poll_ms = std::max<uint32_t>(cfg.poll_ms, 1);
  impl->skel.reset(capture_tc_bpf__open());
  if (!impl->skel) return Errno(errno, "opening the BPF skeleton (capture_tc_bpf__open)");
  if (absl::Status st = bpf_load::Configure(impl->skel->rodata, cfg); !st.ok()) return st;
  impl->skel->rodata->cfg_wakeup_bytes = cfg.wakeup_bytes;
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return Errno(-ncpu, "counting possible CPUs");
  int err = bpf_map__set_max_entries(impl->skel->maps.flows_lru,
                                     std::max<uint32_t>(cfg.flow_entries, 16));
  if (err == 0) err = bpf_map__set_max_entries(impl->skel->maps.scratch, uint32_t(ncpu));
  if (err == 0) {
    err = bpf_map__set_max_entries(impl->skel->maps.events,
                                   static_cast<uint32_t>(RoundUpPow2(cfg.ring_bytes)));
  }
  if (err != 0) return Errno(-err, "sizing the BPF maps");

  {
    // libbpf's messages go to stderr, unless the failure is a plain lack of privilege.
    bpf_load::LibbpfLog libbpf_log;
    if (err = capture_tc_bpf__load(impl->skel.get()); err != 0) {
      if ((-err == EPERM || -err == EACCES) && !bpf_maps::MissingCapabilities(true).empty()) {
        libbpf_log.Quiet();
      }
      return bpf_load::LoadError(kErr, -err, "loading the TC program", true);
    }
  }

  impl->hook.sz = sizeof(impl->hook);
  impl->hook.ifindex = static_cast<int>(ifindex);
  impl->hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
  err = bpf_tc_hook_create(&impl->hook);
  if (err != 0 && err != -EEXIST) {
    const std::string what = absl::StrCat("adding a clsact qdisc to ", cfg.interface);
    return -err == EPERM ? bpf_load::LoadError(kErr, -err, what, true) : Errno(-err, what);
  }
  impl->created_qdisc = err == 0;
  impl->hook_valid = true;  // from here on ~Impl undoes what was done
  const int progs[2] = {bpf_program__fd(impl->skel->progs.pgtls_tc_ingress),
                        bpf_program__fd(impl->skel->progs.pgtls_tc_egress)};
  for (int i = 0; i < 2; ++i) {
    bpf_tc_hook h = impl->hook;
    h.attach_point = i == 0 ? BPF_TC_INGRESS : BPF_TC_EGRESS;
    bpf_tc_opts& o = impl->attached[i];
    o.sz = sizeof(o);
    o.prog_fd = progs[i];
    if (err = bpf_tc_attach(&h, &o); err != 0) {
      return Errno(-err, absl::StrCat("attaching the TC ", i == 0 ? "ingress" : "egress",
                                      " filter to ", cfg.interface));
    }
    impl->is_attached[i] = true;
  }

  impl->ring.reset(
      ring_buffer__new(bpf_map__fd(impl->skel->maps.events), &Impl::OnRecord, impl.get(), nullptr));
  if (!impl->ring) return Errno(errno, "ring_buffer__new");
  impl->batch.reserve(size_t{1} << 20);
  impl->mono_to_real_ns = NowNs(CLOCK_REALTIME) - NowNs(CLOCK_MONOTONIC);
  return std::unique_ptr<BpfTcSource>(new BpfTcSource(std::move(impl), cfg));
}

bool BpfTcSource::created_qdisc() const { return impl_->created_qdisc; }
int BpfTcSource::ingress_prog_fd() const {
  return bpf_program__fd(impl_->skel->progs.pgtls_tc_ingress);
}
int BpfTcSource::egress_prog_fd() const {
  return bpf_program__fd(impl_->skel->progs.pgtls_tc_egress);
}

std::string BpfTcSource::description() const {
  return impl_->created_qdisc ? "ebpf (tc, clsact qdisc added)"
                              : "ebpf (tc, on the existing clsact qdisc)";
}

std::vector<int> BpfTcSource::caps_to_keep() const { return {CAP_NET_ADMIN}; }

absl::StatusOr<bool> BpfTcSource::NextWithTimeout(RawPacket* pkt, int timeout_ms) {
  Impl& im = *impl_;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (im.batch_off < im.batch.size()) {
      abi::pgtls_pkt_event ev{};
      const auto rec = std::span<const uint8_t>(im.batch).subspan(im.batch_off);
      std::memcpy(&ev, rec.data(), sizeof(ev));
      const auto frame = rec.subspan(sizeof(ev), ev.caplen);  // OnRecord kept all of it
      im.batch_off += (sizeof(ev) + ev.caplen + 7) & ~size_t{7};
      pkt->ts_ns = static_cast<uint64_t>(static_cast<int64_t>(ev.ts_ns) + im.mono_to_real_ns);
      pkt->caplen = ev.caplen;
      pkt->wire_len = std::max(ev.len, ev.caplen);
      pkt->linktype = (ev.flags & abi::PGTLS_EV_RAW_IP) != 0 ? kLinkRaw : kLinkEthernet;
      pkt->data = frame;
      return true;
    }
    im.batch.clear();
    im.batch_off = 0;
    const int n = ring_buffer__consume(im.ring.get());
    if (n < 0 && n != -ENOSPC) return Errno(-n, "reading the BPF ring buffer");
    if (!im.batch.empty()) {
      im.mono_to_real_ns = NowNs(CLOCK_REALTIME) - NowNs(CLOCK_MONOTONIC);
      continue;
    }
    // Nothing waiting. Sleep until woken (SYN/FIN/RST, a backlog) or poll_ms, whichever first:
    // records written without a wake-up are read at the latest poll_ms after they arrived.
    int wait_ms = static_cast<int>(im.poll_ms);
    if (timeout_ms >= 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            deadline - std::chrono::steady_clock::now())
                            .count();
      if (left <= 0) return false;
      wait_ms = static_cast<int>(std::min<int64_t>(left, wait_ms));
    }
    epoll_event evs[1];
    const int got = epoll_wait(ring_buffer__epoll_fd(im.ring.get()), evs, 1, wait_ms);
    if (got < 0 && errno != EINTR) return Errno(errno, "epoll_wait on the BPF ring buffer");
    im.polls.fetch_add(1, std::memory_order_relaxed);
    if (got > 0) im.wakeups.fetch_add(1, std::memory_order_relaxed);
    if (stop_requested()) return false;
  }
}

absl::StatusOr<BpfStats> BpfTcSource::Stats() {
  BpfStats out;
  if (auto s = ReadKernelCounters(&out); !s.ok()) return s;
  out.ring_packets = impl_->records.load(std::memory_order_relaxed);
  out.ring_drops = out.drops[abi::PGTLS_DROP_RINGBUF_FULL];
  out.polls = impl_->polls.load(std::memory_order_relaxed);
  out.wakeups = impl_->wakeups.load(std::memory_order_relaxed);
  return out;
}

#endif  // PGTLS_HAVE_BPF

}  // namespace pgtlsmon::capture
