#!/usr/bin/env python3
"""`replay --threads N` gives the same output as one thread, and the right answer.

  check_threads.py PGTLSMON SHARED_DIR [DATA_DIR]

--threads 1 is the single-threaded path; N > 1 is one reader handing each connection's packets
to one of N workers (app/pipeline.h, ShardedPipeline). For every capture of the corpus
(SHARED_DIR/corpus, third_party included) and of DATA_DIR (the repository's tests/data), one by
one: the jsonl records and the --metrics-file of --threads 2, 3 and 4 (and of the default, the
cores available) must be byte-identical to --threads 1's, and so must the exit status. Then a
small make-workload capture, whole, split into 3 files given together (in reverse order) and as
their directory (a multi-file input, one time-ordered stream; connections cross the file
boundaries): jsonl, table and metrics identical across thread counts, the split input's records
equal to the whole file's, and the per-version session counts equal
to the sidecar's. Last line 'N passed, M failed'.
"""
import collections
import json
import os
import struct
import subprocess
import sys
import tempfile

THREADS = (2, 3, 4, 0)  # 0: the default


def run(binary, args, metrics):
    res = subprocess.run([binary, "replay", "--no-progress", "--metrics-file", metrics] + args,
                         capture_output=True, timeout=600)
    with open(metrics, "rb") as f:
        return res.returncode, res.stdout, f.read()


def captures(root):
    out = []
    for d, _, files in os.walk(root):
        for f in files:
            if f.endswith((".pcap", ".pcapng", ".cap")):
                out.append(os.path.join(d, f))
    return sorted(out)


def split_pcap(path, parts, prefix):
    """Classic pcap `path` cut into `parts` files of about equal packet counts."""
    with open(path, "rb") as f:
        head = f.read(24)
        end = "<" if struct.unpack("<I", head[:4])[0] in (0xA1B2C3D4, 0xA1B23C4D) else ">"
        recs = []
        while True:
            h = f.read(16)
            if len(h) < 16:
                break
            caplen = struct.unpack(end + "IIII", h)[2]
            recs.append(h + f.read(caplen))
    names = []
    per = (len(recs) + parts - 1) // parts
    for i in range(parts):
        name = "%s-%02d.pcap" % (prefix, i)
        with open(name, "wb") as f:
            f.write(head)
            f.writelines(recs[i * per:(i + 1) * per])
        names.append(name)
    return names


def main():
    binary, shared = sys.argv[1], sys.argv[2]
    data = sys.argv[3] if len(sys.argv) > 3 else None
    passed = failed = 0

    def check(ok, what):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
            print("FAIL: " + what)

    with tempfile.TemporaryDirectory() as tmp:
        metrics = os.path.join(tmp, "m.prom")
        caps = captures(os.path.join(shared, "corpus"))
        if data:
            caps += captures(data)
        check(len(caps) >= 20, "only %d captures found" % len(caps))
        for cap in caps:
            name = os.path.relpath(cap, os.path.dirname(os.path.dirname(cap)))
            one = run(binary, ["--format", "jsonl", "--threads", "1", cap], metrics)
            for n in THREADS:
                got = run(binary, ["--format", "jsonl", "--threads", str(n), cap], metrics)
                check(got[0] == one[0], "%s: exit %d with --threads %d, %d with 1"
                      % (name, got[0], n, one[0]))
                check(got[1] == one[1], "%s: --threads %d records differ" % (name, n))
                check(got[2] == one[2], "%s: --threads %d metrics differ" % (name, n))

        work = os.path.join(tmp, "w.pcap")
        subprocess.run([os.path.join(shared, "bench", "make-workload"), "--sessions", "300",
                        "--output", work], check=True, capture_output=True)
        expected = json.load(open(work + ".expected.json"))["sessions"]
        os.mkdir(os.path.join(tmp, "parts"))
        parts = split_pcap(work, 3, os.path.join(tmp, "parts", "part"))
        whole = {}
        for name, inputs in (("workload", [work]), ("workload in 3 files", parts[::-1]),
                             ("workload as a directory", [os.path.join(tmp, "parts")])):
            for fmt in ("jsonl", "table"):
                outs = {n: run(binary, ["--format", fmt, "--threads", str(n)] + inputs, metrics)
                        for n in (1,) + THREADS}
                for n in THREADS:
                    check(outs[n] == outs[1], "%s %s: --threads %d differs from 1" % (name, fmt, n))
                if name == "workload":
                    whole[fmt] = outs[1]
                else:
                    check(outs[1][:2] == whole[fmt][:2],
                          "%s %s: not the records of the whole file" % (name, fmt))
                if fmt == "jsonl":
                    got = collections.Counter()
                    for line in outs[1][1].decode().splitlines():
                        r = json.loads(line)
                        got[(r.get("tls") or {}).get("version") or r["outcome"]] += 1
                    check(dict(got) == expected, "%s: sessions %s, sidecar %s"
                          % (name, dict(got), expected))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(0 if failed == 0 else 1)


if __name__ == "__main__":
    main()
