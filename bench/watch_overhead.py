#!/usr/bin/python3
"""What live monitoring costs: CPU seconds and peak RSS of `pgtlsmon watch` (libpcap and eBPF
back ends) next to tcpdump, all capturing the same pgbench-over-TLS traffic on loopback.

Usage (root; PostgreSQL 15, pgbench, tcpdump):
  sudo /usr/bin/python3 bench/watch_overhead.py --pgtlsmon build/pgtlsmon [--duration 30]
       [--clients 8] [--jobs 2] [--scale 5] [--captures pcap,ebpf] [--runs 1]

Each run: a throwaway PostgreSQL 15 server (tests/e2e/pgharness.py: TLS on a free loopback
port), `pgbench -i -s SCALE` over the Unix socket (not captured), then, started together and
idle-settled, `pgtlsmon watch --interface lo --capture C --ports P` for each C and
`tcpdump -i lo -w /dev/null 'tcp port P'`, then `pgbench -c CLIENTS -j JOBS -T DURATION` with
sslmode=require over 127.0.0.1. CPU = utime+stime from /proc/PID/stat over the pgbench run
(all threads), peak RSS = VmHWM from /proc/PID/status at its end (the whole life of the process).
It also checks that each pgtlsmon counted exactly the pgbench connections (CLIENTS plus
pgbench's setup connection), all `tls`. Prints a Markdown table.
"""
import argparse
import os
import platform
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
import pgharness as ph  # noqa: E402
import watchlib as wl  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """(user, system) CPU seconds of a process, all its threads."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK  # utime, stime (fields 14, 15)


def peak_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        m = re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1)) if m else 0


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        m = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
        if m:
            model = m.group(1).strip()
    with open("/proc/meminfo") as f:
        mem = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1)) / 2**20
    return "%s, %d CPUs, %.1f GiB RAM, Linux %s" % (model, os.cpu_count(), mem, platform.release())


def run_once(args, h, srv, captures):
    monitors = []  # (name, process)
    try:
        for c in captures:
            w = wl.WatchProcess(args.pgtlsmon, [srv.port], capture=c)
            if not w.wait_stderr("capturing on lo with %s" % c, timeout=5):
                raise SystemExit("pgtlsmon --capture %s did not start: %s" % (c, w.stderr_text()))
            monitors.append(("pgtlsmon watch --capture %s" % c, w))
        td = wl._Proc(["tcpdump", "-i", "lo", "-w", "/dev/null", "tcp port %d" % srv.port], "tcpdump")
        if not td.wait_stderr("listening on", timeout=10):
            raise SystemExit("tcpdump did not start: %s" % td.stderr_text())
        monitors.append(("tcpdump -i lo -w /dev/null", td))
        time.sleep(1.0)  # let start-up work finish before the first sample

        before = {name: cpu_seconds(p.pid) for name, p in monitors}
        conninfo = "host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=require" % srv.port
        cmd = [os.path.join(ph.PG_BIN, "pgbench"), "-c", str(args.clients), "-j", str(args.jobs),
               "-T", str(args.duration), "-n", conninfo]
        t0 = time.time()
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 120,
                             env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": h.home})
        wall = time.time() - t0
        if res.returncode != 0:
            raise SystemExit("pgbench failed (%d): %s" % (res.returncode, res.stderr))
        after = {name: cpu_seconds(p.pid) for name, p in monitors}
        rss = {name: peak_rss_kib(p.pid) for name, p in monitors}
        tps = re.search(r"tps = ([\d.]+)", res.stdout)
        xacts = re.search(r"number of transactions actually processed: (\d+)", res.stdout)
        time.sleep(1.5)  # pgtlsmon refreshes its packet counters every second
        rows = []
        want_sessions = args.clients + 1  # pgbench's setup connection, then one per client
        for name, p in monitors:
            u = after[name][0] - before[name][0]
            s = after[name][1] - before[name][1]
            row = {"monitor": name, "user": u, "sys": s, "total": u + s,
                   "pct": 100.0 * (u + s) / wall, "rss_mib": rss[name] / 1024.0}
            if isinstance(p, wl.WatchProcess):
                smp = p.samples()
                row["sessions"] = wl.metric_sum(smp, "pgtlsmon_sessions_total")
                row["tls"] = wl.metric_sum(smp, "pgtlsmon_sessions_total", outcome="tls")
                row["packets"] = wl.metric_sum(smp, "pgtlsmon_packets_total")
                row["skipped"] = wl.metric_sum(smp, "pgtlsmon_skipped_packets_total")
                row["drops"] = wl.metric_sum(smp, "pgtlsmon_capture_drops_total")
                row["ok"] = row["sessions"] == want_sessions and row["tls"] == want_sessions
            rows.append(row)
        for name, p in monitors:
            if isinstance(p, wl.WatchProcess):
                p.stop()
        td.stop(signal.SIGINT)
        m = re.search(r"(\d+) packets? captured", td.stderr_text())
        rows[-1]["packets"] = int(m.group(1)) if m else None
        m = re.search(r"(\d+) packets? dropped by kernel", td.stderr_text())
        rows[-1]["drops"] = int(m.group(1)) if m else None
        return {"rows": rows, "wall": wall, "tps": float(tps.group(1)) if tps else None,
                "xacts": int(xacts.group(1)) if xacts else None, "cmd": cmd,
                "want_sessions": want_sessions}
    finally:
        for _name, p in monitors:
            p.close()


def print_table(run, index):
    print("\nRun %d: pgbench %.1f s wall, %s transactions, %.0f tps; pgtlsmon must count %d "
          "sessions (all tls)\n" % (index, run["wall"], run["xacts"], run["tps"] or 0,
                                     run["want_sessions"]))
    print("| monitor | CPU user s | CPU sys s | CPU total s | % of one CPU | peak RSS MiB | "
          "packets seen | skipped (final) | drops | sessions (tls) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in run["rows"]:
        sessions = "-"
        if "sessions" in r:
            sessions = "%d (%d) %s" % (r["sessions"], r["tls"], "ok" if r["ok"] else "MISMATCH")
        print("| `%s` | %.2f | %.2f | %.2f | %.1f | %.1f | %s | %s | %s | %s |" % (
            r["monitor"], r["user"], r["sys"], r["total"], r["pct"], r["rss_mib"],
            "%d" % r["packets"] if r.get("packets") is not None else "?",
            "%d" % r["skipped"] if "skipped" in r else "-",
            "%d" % r["drops"] if r.get("drops") is not None else "?", sessions))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--pgtlsmon", required=True)
    ap.add_argument("--duration", type=int, default=30)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--scale", type=int, default=5)
    ap.add_argument("--captures", default="pcap,ebpf",
                    help="pgtlsmon back ends to run side by side (comma-separated)")
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    why = ph.missing_requirements()
    if not os.access(os.path.join(ph.PG_BIN, "pgbench"), os.X_OK):
        why.append("pgbench missing")
    if why:
        print("watch_overhead: cannot run: %s" % "; ".join(why))
        sys.exit(77)
    captures = [c for c in args.captures.split(",") if c]
    print("Machine: %s" % machine())
    print("Command: %s" % " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]))
    with open("/proc/loadavg") as f:
        print("Load average before: %s" % " ".join(f.read().split()[:3]))
    failed = False
    with ph.Harness() as h:
        srv = h.start_server(max_connections=str(max(20, args.clients + 5)))
        ph.run(["runuser", "-u", ph.PG_USER, "--", os.path.join(ph.PG_BIN, "pgbench"), "-i", "-q",
                "-s", str(args.scale), "-h", srv.sockdir, "-p", str(srv.port), "postgres"],
               timeout=600)
        for i in range(1, args.runs + 1):
            run = run_once(args, h, srv, captures)
            if i == 1:
                print("pgbench: %s" % " ".join(run["cmd"]))
            print_table(run, i)
            failed |= any(r.get("ok") is False for r in run["rows"])
    with open("/proc/loadavg") as f:
        print("\nLoad average after: %s" % " ".join(f.read().split()[:3]))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
