#!/usr/bin/python3
"""eBPF (socket filter, TC) vs libpcap, side by side on the same traffic (a measurement, not a test).

Two network namespaces joined by a veth pair (tests/e2e/pgharness.py NetnsPair), PostgreSQL 15
in one, psql in the other. `pgtlsmon watch --capture ebpf --ebpf-attach socket`, `--capture ebpf
--ebpf-attach tc` and `--capture pcap` run at the same time in the server namespace on the same
veth, so all three see exactly the same packets (the TC one adds a clsact qdisc to that veth,
inside the namespace only). The client
runs `COPY (SELECT repeat('x', 1000) FROM generate_series(1, N)) TO STDOUT` over TLS (default
N = 1,000,000: ~1 GB after the handshake), --connections times.

Printed per back end: user and system CPU seconds of the pgtlsmon process (/proc/PID/stat,
utime/stime; the kernel's copy into the ring runs in softirq context and is not charged to the
process), bytes and packets copied to user space (pgtlsmon_bytes_total/_packets_total), capture
drops, wake-ups of the capture thread (voluntary context switches of the main thread: each is
one sleep in poll/epoll_wait that ended), each also per GB of post-handshake traffic (the bytes
libpcap saw, from the link-layer header). With --prog-stats, kernel.bpf_stats_enabled is set to 1
for the run (restored after) and each program's run_cnt/run_time_ns (bpftool prog show) gives its
in-kernel cost per packet: the socket filter's and the two TC programs'. Needs root.

    sudo /usr/bin/python3 bench/ebpf_vs_pcap.py --pgtlsmon build/pgtlsmon [--rows 1000000]
"""
import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "bpf"))
import pgharness as ph  # noqa: E402
import netns_e2e  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK  # utime, stime


def ctx_switches(pid):
    """Voluntary context switches of the main (capture) thread."""
    with open("/proc/%d/task/%d/status" % (pid, pid)) as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    return 0


def prog_stats(pre):
    """{name: (run_cnt, run_time_ns)} of the pgtlsmon programs in the server namespace."""
    res = ph.run(["bpftool", "-j", "prog", "show"], check=False)
    out = {}
    for p in json.loads(res.stdout.decode() or "[]"):
        name = p.get("name", "")
        if name.startswith("pgtls_"):
            cnt, ns_ = out.get(name, (0, 0))
            out[name] = (cnt + p.get("run_cnt", 0), ns_ + p.get("run_time_ns", 0))
    return out


KINDS = (("socket", "ebpf", ["--ebpf-attach", "socket"]), ("tc", "ebpf", ["--ebpf-attach", "tc"]),
         ("pcap", "pcap", []))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pgtlsmon", required=True)
    ap.add_argument("--rows", type=int, default=1000000, help="COPY rows of 1000 bytes")
    ap.add_argument("--connections", type=int, default=1)
    ap.add_argument("--prog-stats", action="store_true",
                    help="enable kernel.bpf_stats_enabled for the run: per-program kernel cost")
    args = ap.parse_args()
    if ph.missing_requirements():
        print("cannot run: " + "; ".join(ph.missing_requirements()))
        return 77
    binary = os.path.abspath(args.pgtlsmon)
    work = tempfile.mkdtemp(prefix="pgtls-bench-")
    stats_sysctl = "/proc/sys/kernel/bpf_stats_enabled"
    old_stats = open(stats_sysctl).read().strip() if args.prog_stats else None
    if args.prog_stats:
        with open(stats_sysctl, "w") as f:
            f.write("1")
    try:
        return run(args, binary, work)
    finally:
        if old_stats is not None:
            with open(stats_sysctl, "w") as f:
                f.write(old_stats)
        ph.shutil.rmtree(work, ignore_errors=True)


def run(args, binary, work):
    with ph.NetnsPair() as ns, ph.Harness(netns=ns) as h:
        srv = h.start_server()
        pre = ns.exec_prefix("server")
        ws = {}
        try:
            for i, (kind, capture, extra) in enumerate(KINDS):
                ws[kind] = netns_e2e.Watcher(binary, pre, capture, ns.server_veth, srv.port,
                                             os.path.join(work, kind + ".jsonl"),
                                             "127.0.0.1:%d" % (19471 + i), kind, extra)

            def snap():
                out = {"progs": prog_stats(pre)}
                for kind, w in ws.items():
                    src = "%s:%s" % ("pcap" if kind == "pcap" else "ebpf", ns.server_veth)
                    out[kind] = {"cpu": cpu_seconds(w.proc.pid), "wake": ctx_switches(w.proc.pid),
                                 "bytes": w.settled("pgtlsmon_bytes_total", source=src),
                                 "packets": w.settled("pgtlsmon_packets_total", source=src),
                                 "drops": w.metric("pgtlsmon_capture_drops_total", source=src)}
                return out

            sql = "COPY (SELECT repeat('x', 1000) FROM generate_series(1, %d)) TO STDOUT" % args.rows
            before = snap()
            t0 = time.time()
            for _ in range(args.connections):
                ph.run(netns_e2e.client_cmd(ns, h, sql), timeout=3600)
            wall = time.time() - t0
            after = snap()
            for w in ws.values():
                w.stop()
        finally:
            for w in ws.values():
                w.close()

    gb = (after["pcap"]["bytes"] - before["pcap"]["bytes"]) / 1e9
    print("traffic: %d connection(s) x COPY of %d rows x 1000 B over TLS; %.3f GB on the wire "
          "(libpcap's count, link-layer header on), %.1f s wall" % (args.connections, args.rows, gb, wall))
    print("%-6s %8s %8s %14s %10s %6s %8s %8s %10s %14s" % (
        "back", "user s", "sys s", "bytes copied", "packets", "drops", "wakeups", "wakes/s",
        "user s/GB", "bytes/GB"))
    for kind, _, _ in KINDS:
        b, a = before[kind], after[kind]
        user, sys_ = a["cpu"][0] - b["cpu"][0], a["cpu"][1] - b["cpu"][1]
        nbytes, npk = a["bytes"] - b["bytes"], a["packets"] - b["packets"]
        wakes = a["wake"] - b["wake"]
        print("%-6s %8.2f %8.2f %14d %10d %6d %8d %8.1f %10.3f %14.0f" % (
            kind, user, sys_, nbytes, npk, a["drops"] - b["drops"], wakes, wakes / wall,
            user / gb, nbytes / gb))
    if args.prog_stats:
        print("in-kernel program cost (kernel.bpf_stats_enabled=1; run_time_ns / run_cnt):")
        for name in sorted(after["progs"]):
            c1, t1 = after["progs"][name]
            c0, t0 = before["progs"].get(name, (0, 0))
            if c1 > c0:
                print("  %-18s %10d runs %8.1f ns/run %8.3f ms total" % (
                    name, c1 - c0, (t1 - t0) / (c1 - c0), (t1 - t0) / 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main())
