#!/usr/bin/env python3
"""`replay --threads N` gives the same output as one thread, and the right answer.

  check_threads.py PGTLSMON SHARED_DIR

On a small make-workload capture (its sidecar says how many sessions per version a correct
run finds) and on all corpus captures replayed together: jsonl, table and metrics-file output
of --threads 2 and 3 must be byte-identical to --threads 1; the workload's per-version session
counts must equal the sidecar's. Last line 'N passed, M failed'.
"""
import collections
import json
import os
import subprocess
import sys
import tempfile


def run(binary, args):
    res = subprocess.run([binary, "replay", "--no-progress"] + args, capture_output=True,
                         timeout=300)
    return res.returncode, res.stdout


def main():
    binary, shared = sys.argv[1], sys.argv[2]
    passed = failed = 0

    def check(ok, what):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
            print("FAIL: " + what)

    with tempfile.TemporaryDirectory() as tmp:
        work = os.path.join(tmp, "w.pcap")
        subprocess.run([os.path.join(shared, "bench", "make-workload"), "--sessions", "300",
                        "--output", work], check=True, capture_output=True)
        expected = json.load(open(work + ".expected.json"))["sessions"]
        corpus = os.path.join(shared, "corpus")
        caps = sorted(os.path.join(corpus, f) for f in os.listdir(corpus) if f.endswith(".pcap"))
        for name, inputs in (("workload", [work]), ("corpus", caps)):
            for fmt in ("jsonl", "table"):
                outs = {}
                for n in (1, 2, 3):
                    metrics = os.path.join(tmp, "m%d.prom" % n)
                    rc, out = run(binary, ["--format", fmt, "--threads", str(n),
                                           "--metrics-file", metrics] + inputs)
                    outs[n] = (rc, out, open(metrics, "rb").read())
                for n in (2, 3):
                    check(outs[n][0] == outs[1][0], "%s %s: exit %d with --threads %d, %d with 1"
                          % (name, fmt, outs[n][0], n, outs[1][0]))
                    check(outs[n][1] == outs[1][1], "%s %s: --threads %d output differs"
                          % (name, fmt, n))
                    check(outs[n][2] == outs[1][2], "%s %s: --threads %d metrics differ"
                          % (name, fmt, n))
                if name == "workload" and fmt == "jsonl":
                    got = collections.Counter()
                    for line in outs[1][1].decode().splitlines():
                        r = json.loads(line)
                        got[(r.get("tls") or {}).get("version") or r["outcome"]] += 1
                    check(dict(got) == expected, "workload sessions %s, sidecar %s"
                          % (dict(got), expected))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(0 if failed == 0 else 1)


if __name__ == "__main__":
    main()
