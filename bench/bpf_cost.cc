// bench/bpf_cost.cc: what each eBPF program costs per packet, on its three common paths (a
// packet of another port, a packet of a connection still in its handshake, a packet of a
// connection whose record is final), measured with BPF_PROG_TEST_RUN's repeat loop (the kernel
// times it). These figures were printed by two "tests" that could not fail; a benchmark is where
// they belong (bench/README.md, "eBPF programs"). Each path is measured on the bare frame and
// on the same frame wrapped in VXLAN, GENEVE (with options), GRE (key) and ERSPAN III (with the
// platform subheader): what in-kernel decapsulation adds. Needs root (CAP_BPF).
//   build/bench/pgtls_bpf_cost [REPEAT]
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "capture.skel.h"
#include "capture/bpf_abi.h"
#include "capture/bpf_source.h"
#include "capture_tc.skel.h"
#include "parser/text.h"
#include "tests/testing/packet_builder.h"
#include "tests/testing/tunnel_frames.h"

namespace {

using pgtlsmon::capture::BpfSource;
using pgtlsmon::capture::FlowTuple;
namespace abi = pgtlsmon::capture::abi;
namespace t = pgtlsmon::testing;
namespace w = pgtlsmon::testing::tunnel;

constexpr t::Ipv4Addr kClient{10, 0, 0, 1};
constexpr t::Ipv4Addr kServer{10, 0, 0, 2};
const FlowTuple kFlow = FlowTuple::From(kClient, 40000, kServer, 5432);

t::TcpFrame C2S() { return t::TcpFrame{}.Ipv4(kClient, kServer).Ports(40000, 5432); }

// Average ns per run of `prog_fd` on `frame`, or -1 on error.
long Measure(int prog_fd, const std::vector<uint8_t>& frame, int repeat) {
  bpf_test_run_opts opts{};
  opts.sz = sizeof(opts);
  opts.data_in = frame.data();
  opts.data_size_in = static_cast<uint32_t>(frame.size());
  opts.repeat = repeat;
  if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) return -1;
  return static_cast<long>(opts.duration);
}

// A frame as sent bare, or wrapped in one encapsulation.
using Wrap = std::vector<uint8_t> (*)(const std::vector<uint8_t>& eth);
std::vector<uint8_t> Bare(const std::vector<uint8_t>& eth) { return eth; }
std::vector<uint8_t> InVxlan(const std::vector<uint8_t>& eth) {
  return w::Outer(false, 17, w::Udp(4789, w::Vxlan(42, eth)));
}
std::vector<uint8_t> InGeneve(const std::vector<uint8_t>& eth) {
  return w::Outer(false, 17, w::Udp(6081, w::Geneve(42, 0x6558, eth, 4)));
}
std::vector<uint8_t> InGre(const std::vector<uint8_t>& eth) {
  return w::Outer(false, 47, w::Gre(w::kGreK, 0x0800, 42, w::StripEthernet(eth)));
}
std::vector<uint8_t> InErspan3(const std::vector<uint8_t>& eth) {
  return w::Outer(false, 47, w::Erspan3(42, true, eth));
}

// Forgets the connection (the next path starts from a handshake flow again).
void Forget(int flows_fd) {
  const abi::pgtls_flow_key key = BpfSource::MakeKey(kFlow);
  (void)bpf_map_delete_elem(flows_fd, &key);
}

// What BpfSource::MarkDone does: the connection's flow entry says DONE.
bool MarkDone(int flows_fd) {
  const abi::pgtls_flow_key key = BpfSource::MakeKey(kFlow);
  abi::pgtls_flow_value v{};
  (void)bpf_map_lookup_elem(flows_fd, &key, &v);
  v.state = abi::PGTLS_FLOW_DONE;
  return bpf_map_update_elem(flows_fd, &key, &v, BPF_ANY) == 0;
}

struct Paths {
  long other = -1, handshake = -1, done = -1;
};

// The three paths on one program: other port, a pure ACK of a handshake connection (passed,
// never reaches the byte cap), 1400 bytes of a connection marked done.
Paths MeasurePaths(int prog_fd, int flows_fd, int repeat, Wrap wrap) {
  Paths p;
  Forget(flows_fd);
  p.other = Measure(prog_fd, wrap(C2S().Ports(40000, 443).Payload(1400).Build()), repeat);
  p.handshake = Measure(prog_fd, wrap(C2S().Flags(t::kTcpAck).Build()), repeat);
  if (MarkDone(flows_fd)) {
    p.done =
        Measure(prog_fd, wrap(C2S().Flags(t::kTcpAck | t::kTcpPsh).Payload(1400).Build()), repeat);
  }
  return p;
}

int Fail(const char* what) {
  std::fprintf(stderr, "pgtls_bpf_cost: %s: %s\n", what,
               pgtlsmon::parser::ErrnoText(errno).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::span<char*> args(argv, static_cast<size_t>(argc));
  const int repeat = args.size() > 1 ? std::atoi(args[1]) : 200000;
  if (geteuid() != 0) {
    std::fprintf(stderr, "pgtls_bpf_cost: needs root (CAP_BPF)\n");
    return 2;
  }
  std::unique_ptr<capture_bpf, decltype(&capture_bpf__destroy)> sf(capture_bpf__open(),
                                                                   &capture_bpf__destroy);
  if (!sf) return Fail("capture_bpf__open");
  sf->rodata->cfg_ports[0] = 5432;
  sf->rodata->cfg_nports = 1;
  sf->rodata->cfg_per_dir_cap = 1000;
  if (capture_bpf__load(sf.get()) != 0) return Fail("capture_bpf__load");

  std::unique_ptr<capture_tc_bpf, decltype(&capture_tc_bpf__destroy)> tc(capture_tc_bpf__open(),
                                                                         &capture_tc_bpf__destroy);
  if (!tc) return Fail("capture_tc_bpf__open");
  tc->rodata->cfg_per_dir_cap = 1000;
  // Nobody reads the ring during a repeat loop: without this every record past 256 KiB would
  // force a wake-up (an irq_work each), which a running pgtlsmon, draining the ring, never sees.
  tc->rodata->cfg_wakeup_bytes = 1u << 30;
  if (bpf_map__set_max_entries(tc->maps.scratch,
                               static_cast<uint32_t>(libbpf_num_possible_cpus())) != 0 ||
      // Room for every record of one path's repeat loop (at most ~200 B each): a full ring
      // would make the passed path cheap (bpf_ringbuf_output fails fast).
      bpf_map__set_max_entries(tc->maps.events, 1u << 26) != 0) {
    return Fail("bpf_map__set_max_entries");
  }
  if (capture_tc_bpf__load(tc.get()) != 0) return Fail("capture_tc_bpf__load");
  std::unique_ptr<ring_buffer, decltype(&ring_buffer__free)> ring(
      ring_buffer__new(
          bpf_map__fd(tc->maps.events), [](void*, void*, size_t) { return 0; }, nullptr, nullptr),
      &ring_buffer__free);
  if (!ring) return Fail("ring_buffer__new");

  struct {
    const char* name;
    Wrap wrap;
  } const wraps[] = {{"bare", Bare},
                     {"vxlan", InVxlan},
                     {"geneve+opts", InGeneve},
                     {"gre key", InGre},
                     {"erspan III+sub", InErspan3}};
  std::printf("ns per packet (BPF_PROG_TEST_RUN, %d runs each)\n", repeat);
  std::printf("%-28s %-15s %10s %16s %10s\n", "program", "frame", "other port", "handshake flow",
              "done flow");
  bool ok = true;
  for (const auto& wr : wraps) {
    const Paths s = MeasurePaths(bpf_program__fd(sf->progs.pgtls_capture),
                                 bpf_map__fd(sf->maps.flows_lru), repeat, wr.wrap);
    (void)ring_buffer__consume(ring.get());  // empty the ring before each TC series
    const Paths c = MeasurePaths(bpf_program__fd(tc->progs.pgtls_tc_ingress),
                                 bpf_map__fd(tc->maps.flows_lru), repeat, wr.wrap);
    std::printf("%-28s %-15s %10ld %16ld %10ld\n", "socket filter (default)", wr.name, s.other,
                s.handshake, s.done);
    std::printf("%-28s %-15s %10ld %16ld %10ld\n", "TC ingress (+ ring buffer)", wr.name, c.other,
                c.handshake, c.done);
    ok = ok && s.other >= 0 && s.handshake >= 0 && s.done >= 0 && c.other >= 0 &&
         c.handshake >= 0 && c.done >= 0;
  }
  return ok ? 0 : 1;
}
