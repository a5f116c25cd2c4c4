#!/usr/bin/python3
"""eBPF vs libpcap back end, side by side on the same traffic (a measurement, not a test).

Two network namespaces joined by a veth pair (tests/e2e/pgharness.py NetnsPair), PostgreSQL 15
in one, psql in the other. `pgtlsmon watch --capture ebpf` and `--capture pcap` run at the same
time in the server namespace on the same veth, so both see exactly the same packets. The client
runs `COPY (SELECT repeat('x', 1000) FROM generate_series(1, N)) TO STDOUT` over TLS (default
N = 1,000,000: ~1 GB after the handshake), --connections times.

Printed per back end: user and system CPU seconds of the pgtlsmon process (/proc/PID/stat,
utime/stime; the kernel's copy into the ring runs in softirq context and is not charged to the
process), bytes and packets copied to user space (pgtlsmon_bytes_total/_packets_total), capture
drops, each also per GB of post-handshake traffic (the bytes libpcap saw, from the link-layer
header). Needs root.

    sudo /usr/bin/python3 bench/ebpf_vs_pcap.py --pgtlsmon build/pgtlsmon [--rows 1000000]
"""
import argparse
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pgtlsmon", required=True)
    ap.add_argument("--rows", type=int, default=1000000, help="COPY rows of 1000 bytes")
    ap.add_argument("--connections", type=int, default=1)
    args = ap.parse_args()
    if ph.missing_requirements():
        print("cannot run: " + "; ".join(ph.missing_requirements()))
        return 77
    binary = os.path.abspath(args.pgtlsmon)
    work = tempfile.mkdtemp(prefix="pgtls-bench-")
    with ph.NetnsPair() as ns, ph.Harness(netns=ns) as h:
        srv = h.start_server()
        pre = ns.exec_prefix("server")
        ws = {}
        try:
            for i, kind in enumerate(("ebpf", "pcap")):
                ws[kind] = netns_e2e.Watcher(binary, pre, kind, ns.server_veth, srv.port,
                                             os.path.join(work, kind + ".jsonl"),
                                             "127.0.0.1:%d" % (19471 + i), kind)

            def snap():
                out = {}
                for kind, w in ws.items():
                    src = "%s:%s" % (kind, ns.server_veth)
                    out[kind] = {"cpu": cpu_seconds(w.proc.pid),
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
    ph.shutil.rmtree(work, ignore_errors=True)

    gb = (after["pcap"]["bytes"] - before["pcap"]["bytes"]) / 1e9
    print("traffic: %d connection(s) x COPY of %d rows x 1000 B over TLS; %.3f GB on the wire "
          "(libpcap's count, link-layer header on), %.1f s wall" % (args.connections, args.rows, gb, wall))
    print("%-6s %10s %10s %14s %12s %8s %12s %12s %14s" % (
        "back", "user s", "sys s", "bytes copied", "packets", "drops", "user s/GB", "sys s/GB",
        "bytes/GB"))
    for kind in ("ebpf", "pcap"):
        b, a = before[kind], after[kind]
        user, sys_ = a["cpu"][0] - b["cpu"][0], a["cpu"][1] - b["cpu"][1]
        nbytes, npk = a["bytes"] - b["bytes"], a["packets"] - b["packets"]
        print("%-6s %10.2f %10.2f %14d %12d %8d %12.3f %12.3f %14.0f" % (
            kind, user, sys_, nbytes, npk, a["drops"] - b["drops"], user / gb, sys_ / gb, nbytes / gb))
    return 0


if __name__ == "__main__":
    sys.exit(main())
