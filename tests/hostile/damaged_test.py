#!/usr/bin/env python3
"""Damaged and odd captures through the CLI (CTest 'hostile_damaged', label integration).

    damaged_test.py PGTLSMON [SHARED_DIR]

Builds each case from ../shared/corpus/real_tls13_default.pcap in a temporary directory and
runs `pgtlsmon replay --format jsonl` on it under a timeout. Damage (truncation, bad magic, a
record header claiming 4 GB, a bad pcapng block length, a cut gzip stream) must exit 1 with a
message naming the file (and the byte offset for damage after the header) and still print
the records read before it; merely odd files (caplen > len, zero-length packets, snaplen-cut
packets, timestamps going backwards, unknown pcapng blocks, a header without packets) exit 0.
No case may crash or hang. Then the counters: the malformed TLS of
crafted_malformed_tls_records and the snaplen holes of real_snaplen96_truncated must show in
pgtlsmon_parse_errors_total.
"""
import gzip
import json
import pathlib
import re
import struct
import subprocess
import sys
import tempfile

TIMEOUT = 30


def read_pcap(path):
    data = path.read_bytes()
    hdr, off, pkts = data[:24], 24, []
    while off + 16 <= len(data):
        sec, usec, caplen, wire = struct.unpack_from("<IIII", data, off)
        pkts.append([sec, usec, data[off + 16:off + 16 + caplen], wire])
        off += 16 + caplen
    return hdr, pkts


def pcap(hdr, pkts, snaplen=None):
    out = bytearray(hdr)
    if snaplen is not None:
        struct.pack_into("<I", out, 16, snaplen)
    for sec, usec, data, wire in pkts:
        out += struct.pack("<IIII", sec, usec, len(data), wire) + data
    return bytes(out)


def pcap_raw_records(hdr, records):
    """records: (sec, usec, caplen, wire, data) with caplen written as given."""
    out = bytearray(hdr)
    for sec, usec, caplen, wire, data in records:
        out += struct.pack("<IIII", sec, usec, caplen, wire) + data
    return bytes(out)


def block(btype, body):
    body = body + b"\x00" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def pcapng(pkts, extra=None):
    """SHB, IDB (Ethernet, µs), then EPBs; extra(i) returns blocks to put before packet i."""
    out = bytearray(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
    out += block(1, struct.pack("<HHI", 1, 0, 262144))
    for i, (sec, usec, data, wire) in enumerate(pkts):
        if extra:
            out += extra(i)
        ts = sec * 1000000 + usec
        out += block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(data), wire) + data)
    return bytes(out)


def main():
    binary = sys.argv[1]
    shared = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else
                          pathlib.Path(__file__).resolve().parents[3] / "shared")
    base = shared / "corpus" / "real_tls13_default.pcap"
    hdr, pkts = read_pcap(base)
    full = base.read_bytes()
    n = len(pkts)
    half = n // 2
    # Byte offset of record `half` (where the damage goes in the mid-file cases).
    mid_off = 24 + sum(16 + len(p[2]) for p in pkts[:half])
    rec = lambda p: (p[0], p[1], len(p[2]), p[3], p[2])

    def snapcut(p):
        return [p[0], p[1], p[2][:96], p[3]]

    backwards = [list(p) for p in pkts]
    for i in range(1, len(backwards), 3):
        backwards[i][0] -= 3600  # an hour back, every third packet

    cases = [
        # name, bytes, expected exit, needs records on stdout, message must match (regex)
        ("empty", b"", 1, False, r"empty|short|truncated"),
        ("bad_magic", b"\xde\xad\xbe\xef" + full[4:], 1, False, r"magic|format"),
        ("short_header", full[:10], 1, False, r"short|truncated|header"),
        ("header_only", full[:24], 0, False, None),
        ("truncated_mid_record", full[:mid_off + 16 + 7], 1, True, rf"offset {mid_off}\b"),
        ("truncated_in_record_header", full[:mid_off + 9], 1, True, rf"offset {mid_off}\b"),
        ("caplen_4gb", pcap_raw_records(hdr, [rec(p) for p in pkts[:half]] +
                                        [(1, 0, 0xFFFFFFFF, 0xFFFFFFFF, b"\x00" * 64)] +
                                        [rec(p) for p in pkts[half:]]), 1, True,
         rf"offset {mid_off}\b"),
        ("caplen_over_len", pcap_raw_records(hdr, [(p[0], p[1], len(p[2]), max(1, len(p[2]) // 2),
                                                    p[2]) for p in pkts]), 0, True, None),
        ("zero_length_packets", pcap_raw_records(
            hdr, [r for p in pkts for r in ((p[0], p[1], 0, 0, b""), rec(p))]), 0, True, None),
        ("snaplen_cut", pcap(hdr, [snapcut(p) for p in pkts], snaplen=96), 0, True, None),
        ("ts_backwards", pcap(hdr, backwards), 0, True, None),
        ("pcapng_unknown_blocks", pcapng(pkts, lambda i: block(0x0BAD0000 + i, b"x" * (i % 9)) +
                                         (block(0x40000BAD, b"\x00" * 4) if i % 5 == 0 else b"")),
         0, True, None),
        ("pcapng_bad_block_length", pcapng(pkts[:half]) + struct.pack("<II", 6, 13) + b"\x00" * 64,
         1, True, r"offset \d+"),
        ("gzip_truncated", gzip.compress(full, mtime=0)[:len(gzip.compress(full, mtime=0)) * 2 // 3],
         1, True, r"offset|truncated|gzip|corrupt"),
    ]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, data, want_rc, want_records, msg_re in cases:
            path = pathlib.Path(tmp) / f"{name}.pcap"
            path.write_bytes(data)
            try:
                p = subprocess.run([binary, "replay", "--format", "jsonl", "--no-progress",
                                    str(path)], capture_output=True, timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                print(f"FAIL {name}: hung (> {TIMEOUT} s)")
                failures += 1
                continue
            out = p.stdout.decode(errors="replace").splitlines()
            err = p.stderr.decode(errors="replace").strip()
            problems = []
            if p.returncode < 0 or p.returncode > 2 and p.returncode != want_rc:
                problems.append(f"crashed (exit {p.returncode})")
            elif p.returncode != want_rc:
                problems.append(f"exit {p.returncode}, want {want_rc}")
            try:
                records = [json.loads(line) for line in out if line.strip()]
            except json.JSONDecodeError as e:
                problems.append(f"bad JSON on stdout: {e}")
                records = []
            if want_records and not records:
                problems.append("no records before the damage")
            if want_rc == 1:
                if str(path) not in err:
                    problems.append("message does not name the file")
                if msg_re and not re.search(msg_re, err, re.I):
                    problems.append(f"message does not match /{msg_re}/")
            status = "FAIL" if problems else "ok  "
            failures += bool(problems)
            first = err.splitlines()[-1] if err else ""
            print(f"{status} {name}: exit {p.returncode}, {len(records)} records; "
                  f"{'; '.join(problems) or first.replace(str(path), '<file>')}")
    # Counters: input that did not become (part of) a record is counted, not dropped silently.
    counter_cases = [
        # capture, metric label filter, minimum
        ("crafted_malformed_tls_records.pcap", 'stage="tls"', 5),
        ("real_snaplen96_truncated.pcap", 'reason="hole",stage="tcp"', 1),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for cap, labels, minimum in counter_cases:
            mfile = pathlib.Path(tmp) / "m.prom"
            p = subprocess.run([binary, "replay", "--format", "jsonl", "--no-progress",
                                "--metrics-file", str(mfile), str(shared / "corpus" / cap)],
                               capture_output=True, timeout=TIMEOUT)
            text = mfile.read_text() if mfile.exists() else ""
            got = sum(float(v) for lab, v in re.findall(
                r"^pgtlsmon_parse_errors_total\{([^}]*)\} (\S+)$", text, re.M) if labels in lab)
            ok = p.returncode == 0 and got >= minimum
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} counters {cap}: parse errors {{{labels}}} = "
                  f"{got:.0f} (want >= {minimum}), exit {p.returncode}")
        cases += counter_cases
    print(f"{len(cases) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
