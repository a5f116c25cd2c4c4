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

With --vxlan PORT the same traffic crosses a VXLAN overlay (UDP PORT, VNI 42; devices k15vx0 in
both namespaces over the veth, which keeps only the underlay addresses 10.215.0.1/.2): PostgreSQL's
10.201.0.1 lives on the VXLAN device, the monitors still watch the veth, so they see every packet
wrapped (Ethernet / IPv4 / UDP / VXLAN / Ethernet / IPv4 / TCP), as a mirror target or a
Kubernetes node's uplink does. The eBPF programs decapsulate in the kernel; libpcap passes the
whole tunnel. Also printed: the first connection's handshake bytes (its frames up to the one
completing the ServerHello, from a tcpdump of its first 40 packets on the inner interface, plus
50 bytes of outer headers per frame when wrapped) and the eBPF bytes copied per connection.
"""
import argparse
import json
import os
import subprocess
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
    ap.add_argument("--vxlan", type=int, default=0, metavar="PORT",
                    help="carry the traffic in VXLAN on this UDP port (4789, 8472); 0: bare")
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
        if args.vxlan:
            netns_e2e.vxlan_overlay(ns, args.vxlan)
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
            # The first connection's first 40 packets, as the inner interface sees them.
            hs_pcap = os.path.join(work, "head.pcap")
            inner = netns_e2e.VXLAN_DEV if args.vxlan else ns.server_veth
            td = subprocess.Popen(pre + ["tcpdump", "-i", inner, "-n", "-U", "-c", "40", "-w",
                                            hs_pcap, "tcp port %d" % srv.port],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
            for raw in td.stderr:
                if b"listening on" in raw:
                    break
            for i in range(args.connections):
                ph.run(netns_e2e.client_cmd(ns, h, sql, extra="ssl_min_protocol_version=TLSv1.3"),
                       timeout=3600)
                if i == 0:
                    try:
                        td.wait(10)
                    finally:
                        if td.poll() is None:
                            td.kill()
                            td.wait()
            wall = time.time() - t0
            after = snap()
            tunnels = {k: ws[k].metric("pgtlsmon_capture_tunnel_packets_total",
                                       source="ebpf:" + ns.server_veth, type="vxlan")
                       for k in ("socket", "tc")}
            for w in ws.values():
                w.stop()
        finally:
            for w in ws.values():
                w.close()

    gb = (after["pcap"]["bytes"] - before["pcap"]["bytes"]) / 1e9
    hs_frames, hs_bytes = netns_e2e.handshake_bytes(hs_pcap, srv.port)
    if args.vxlan:
        hs_bytes += netns_e2e.VXLAN_OVERHEAD * hs_frames
    print("traffic: %d connection(s) x COPY of %d rows x 1000 B over TLS 1.3%s; %.3f GB on the wire "
          "(libpcap's count, link-layer header on), %.1f s wall" % (
              args.connections, args.rows,
              " in VXLAN (UDP %d, outer IPv4)" % args.vxlan if args.vxlan else " (bare)", gb, wall))
    print("handshake: %d bytes in %d frames per connection (up to the ServerHello%s)" % (
        hs_bytes, hs_frames, ", outer headers included" if args.vxlan else ""))
    if args.vxlan:
        print("decapsulated in the kernel (pgtlsmon_capture_tunnel_packets_total{type=vxlan}): "
              "socket %d, tc %d" % (tunnels["socket"], tunnels["tc"]))
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
    for kind, _, _ in KINDS:  # the session logs: one record per connection, tunnel named
        with open(os.path.join(work, kind + ".jsonl")) as f:
            recs = [json.loads(line) for line in f if line.strip()]
        bulk = [r for r in recs if r.get("tunnel") or not args.vxlan]
        print("%s: %d session records, %d with a tunnel object" % (
            kind, len(recs), sum(1 for r in recs if r.get("tunnel"))))
        if len(bulk) != args.connections:
            print("  WARNING: expected %d records" % args.connections)
    for kind in ("socket", "tc"):
        per_conn = (after[kind]["bytes"] - before[kind]["bytes"]) / args.connections
        print("%s: %.0f bytes copied per connection = handshake %d + %.0f" % (
            kind, per_conn, hs_bytes, per_conn - hs_bytes))
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
