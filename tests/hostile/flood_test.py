#!/usr/bin/env python3
"""Flood captures through `pgtlsmon replay` (CTest 'hostile_floods', label hostile).

    flood_test.py PGTLSMON [--dir /tmp/pgtlsmon-hostile] [--shared ../shared]

Generates (once; gen_floods.py, cached by the generator's hash) a capture of 1 000 000
half-open connections (SYN only) and one of 100 000 concurrent TLS handshakes that never
finish, each with 12 real sessions mixed in, and replays them with
`--format jsonl --metrics-file M --max-flows N` for a few caps. Checks, per run:
  - peak RSS (ru_maxrss) <= BASE + PER_FLOW * min(N, connections): the stated bound;
  - pgtlsmon_flow_evictions_total{reason="table_full"} == connections - N when the flood
    exceeds the cap (every connection is either evicted or still tracked at the end);
  - records: one per connection that carried a payload (SYN-only ones get none, as
    session-record.md says), evicted ones included (outcome incomplete);
  - the real sessions match their reference records (compare-sessions, rewritten ports).
Prints one line of figures per run, and the bytes per tracked connection measured.
"""
import argparse
import hashlib
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
BASE_KB = 24 * 1024   # fixed cost: the binary, libraries, buffers
PER_FLOW_BYTES = 3072  # stated bound per tracked connection (measured: README.md)


def run(binary, cap, max_flows, out_path, metrics_path):
    """Replays; returns (exit code, peak RSS in KiB, stderr)."""
    with open(out_path, "wb") as out, tempfile.TemporaryFile() as err:
        # One thread: the stated bounds are those of one connection table (with --threads N
        # the workers share --max-flows, and their batches and records in flight come on top;
        # check_threads.py holds N threads to the same records and counters).
        p = subprocess.Popen([binary, "replay", "--format", "jsonl", "--no-progress",
                              "--threads", "1", "--metrics-file", str(metrics_path), "--max-flows", str(max_flows),
                              str(cap)], stdout=out, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return p.returncode, ru.ru_maxrss, err.read().decode(errors="replace")


def metric(text, name, labels=""):
    total = 0.0
    for m in re.finditer(rf"^{name}(\{{[^}}]*\}})? (\S+)$", text, re.M):
        if labels in (m.group(1) or ""):
            total += float(m.group(2))
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pgtlsmon")
    ap.add_argument("--dir", default="/tmp/pgtlsmon-hostile")
    ap.add_argument("--shared", default=str(HERE.parents[2] / "shared"))
    a = ap.parse_args()
    work = pathlib.Path(a.dir)
    work.mkdir(parents=True, exist_ok=True)
    gen = HERE / "gen_floods.py"
    tag = hashlib.sha1(gen.read_bytes()).hexdigest()[:10]
    caps = {}
    for kind in ("syn", "tls"):
        cap = work / f"flood_{kind}_{tag}.pcap"
        if not cap.exists():
            subprocess.run([sys.executable, str(gen), kind, str(cap)], check=True)
        caps[kind] = cap

    # kind, --max-flows, flood connections, expected flood records
    runs = [("syn", 65536, 1000000, 0), ("syn", 262144, 1000000, 0),
            ("tls", 20000, 100000, 100000), ("tls", 262144, 100000, 100000)]
    failures = []
    rss_by_run = {}
    for kind, max_flows, flows, flood_records in runs:
        cap = caps[kind]
        truth = cap.with_suffix(".truth.jsonl")
        real = sum(1 for _ in truth.open())
        out, mfile = work / f"out_{kind}_{max_flows}.jsonl", work / f"metrics_{kind}.prom"
        rc, rss_kb, err = run(a.pgtlsmon, cap, max_flows, out, mfile)
        m = mfile.read_text() if mfile.exists() else ""
        conns = flows + real
        evictions = metric(m, "pgtlsmon_flow_evictions_total", 'reason="table_full"')
        idle = metric(m, "pgtlsmon_flow_evictions_total", 'reason="idle_timeout"')
        parse_errors = metric(m, "pgtlsmon_parse_errors_total")
        # Records: count them, and keep the real sessions' (127.0.0.1 and ::1; the flood's
        # clients are 10.0.0.0/8).
        n_records, outcomes, real_recs = 0, {}, []
        with out.open() as f:
            for line in f:
                n_records += 1
                r = json.loads(line)
                outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
                if r["client"]["ip"] in ("127.0.0.1", "::1"):
                    real_recs.append(line)
        out.unlink()
        bound_kb = BASE_KB + PER_FLOW_BYTES * min(max_flows, conns) // 1024
        rss_by_run[(kind, max_flows)] = rss_kb
        label = f"{kind} flood, --max-flows {max_flows}"
        print(f"{label}: exit {rc}, peak RSS {rss_kb / 1024:.1f} MiB (bound "
              f"{bound_kb / 1024:.1f}), {n_records} records {outcomes}, evictions table_full "
              f"{evictions:.0f} idle {idle:.0f}, parse errors {parse_errors:.0f}")
        if rc != 0:
            failures.append(f"{label}: exit {rc}: {err[-300:]}")
        if rss_kb > bound_kb:
            failures.append(f"{label}: peak RSS {rss_kb} KiB above the bound {bound_kb} KiB")
        want_ev = max(0, conns - max_flows)
        if evictions != want_ev:
            failures.append(f"{label}: {evictions:.0f} table_full evictions, want {want_ev}")
        if n_records != flood_records + real:
            failures.append(f"{label}: {n_records} records, want {flood_records + real}")
        if kind == "tls" and outcomes.get("incomplete", 0) != flows:
            failures.append(f"{label}: {outcomes.get('incomplete', 0)} incomplete, want {flows}")
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl") as actual:
            actual.writelines(real_recs)
            actual.flush()
            cmp = subprocess.run([str(pathlib.Path(a.shared) / "tools" / "compare-sessions"),
                                  str(truth), actual.name, "--quiet"],
                                 capture_output=True, text=True)
            summary = (cmp.stdout.strip().splitlines() or [""])[-1]
            print(f"  real sessions: {len(real_recs)} records, compare-sessions: {summary}")
            if cmp.returncode != 0:
                failures.append(f"{label}: real sessions differ: {cmp.stdout[-500:]}")
    for kind in ("syn", "tls"):
        lo, hi = [(mf, rss) for (k, mf), rss in sorted(rss_by_run.items()) if k == kind]
        per = (hi[1] - lo[1]) * 1024 / (min(hi[0], 1000000 if kind == "syn" else 100012) - lo[0])
        print(f"{kind} flood: {per:.0f} bytes per tracked connection (RSS slope between caps)")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
