#!/usr/bin/python3
"""`replay` of an archive: many, rotated, overlapping, compressed, damaged capture files as one
capture, and the --since/--until/--filter selection (issue 14). One case per run.

Usage: check_archive.py PGTLSMON SHARED_DIR CASE

Inputs are built at test time from real corpus captures with Wireshark's and tcpdump's own
tools (editcap, mergecap, tshark, tcpdump), scapy for link-layer conversion, and gzip/zstd/xz:
  rotated     the capture split by editcap -c into files, some handshake crossing a file
              boundary: the records of the directory equal the unsplit file's, byte for byte;
  overlap     the capture split by TCP connection into two files whose times interleave:
              records equal the original's, in either argument order;
  linktypes   Ethernet pcap + Linux cooked (SLL) pcapng + raw IP pcap in one job: each file's
              converted records equal its Ethernet original's, and the job yields all of them;
  compressed  a directory of gzip/zstd/xz captures (names without extensions) and a README:
              records equal the plain files', the README is skipped and said so;
  damaged     three captures, the middle one truncated mid-record: exit 1, its name and an
              offset on stderr, the records of the others and of the damaged one before the cut;
  window      --since (RFC 3339) / --until (epoch) equal editcap -A/-B's selection; --filter
              equals tcpdump's selection with the same expression; bad values are exit 2.
Last line 'N passed, M failed'.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ENV = dict(os.environ, TZ="UTC")
# scapy is Debian's (python3-scapy): run the converter with Debian's python3 when it is there.
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
BIG = "real_tls12_cipher_variety"  # 244 packets, 6.6 s, many connections one after the other


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, env=ENV, **kw)


class Checker:
    def __init__(self, binary):
        self.binary = binary
        self.passed = 0
        self.failed = 0

    def replay(self, *args):
        p = subprocess.run([self.binary, "replay", "--no-progress", "--format", "jsonl", *args],
                           capture_output=True, text=True, timeout=300, env=ENV)
        return p.returncode, p.stdout.splitlines(), p.stderr

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL: " + what)


def client_ports(pcap):
    out = sh("tshark", "-r", pcap, "-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 0", "-T", "fields",
             "-e", "tcp.srcport").stdout.decode().split()
    return sorted(set(int(p) for p in out))


def case_rotated(c, corpus, tmp):
    src = os.path.join(corpus, BIG + ".pcap")
    rc, want, _ = c.replay(src)
    c.check(rc == 0 and len(want) >= 5, "original: exit %d, %d records" % (rc, len(want)))
    d = os.path.join(tmp, "rot")
    os.mkdir(d)
    sh("editcap", "-c", "37", src, os.path.join(d, "part.pcap"))
    parts = sorted(os.listdir(d))
    c.check(len(parts) >= 5, "editcap made %d files" % len(parts))
    # Some connection really crosses a boundary: no single part alone has all its records.
    alone = set()
    for p in parts:
        alone.update(c.replay(os.path.join(d, p))[1])
    c.check(not set(want) <= alone, "no record needed two files: the split proves nothing")
    rc, got, err = c.replay(d)
    c.check(rc == 0, "directory: exit %d (%s)" % (rc, err.strip()))
    c.check(got == want, "directory: %d records differ from the unsplit file's %d"
            % (len(got), len(want)))
    rc, got_rev, _ = c.replay(*[os.path.join(d, p) for p in reversed(parts)])
    c.check(got_rev == want, "files in reverse order: records differ")
    c.check("%d capture files read" % len(parts) in err, "summary: %r" % err)
    # Compressed rotated files (as logrotate leaves them): the same.
    for i, p in enumerate(parts):
        tool = ["gzip", "zstd -q --rm", "xz"][i % 3].split()
        sh(*tool, os.path.join(d, p))
    rc, got_z, err = c.replay(d)
    c.check(rc == 0 and got_z == want, "compressed parts: exit %d, records differ: %s"
            % (rc, err.strip()))


def case_overlap(c, corpus, tmp):
    src = os.path.join(corpus, BIG + ".pcap")
    _, want, _ = c.replay(src)
    ports = client_ports(src)
    c.check(len(ports) >= 4, "%d connections" % len(ports))
    even = " or ".join("tcp port %d" % p for p in ports[0::2])
    a, b = os.path.join(tmp, "a.pcap"), os.path.join(tmp, "b.pcap")
    sh("tcpdump", "-r", src, "-w", a, even)
    sh("tcpdump", "-r", src, "-w", b, "not (%s)" % even)
    # The two files' time ranges interleave (else this is the rotated case again).
    def span(f):
        ts = [float(x) for x in sh("tshark", "-r", f, "-T", "fields", "-e",
                                   "frame.time_epoch").stdout.split()]
        return min(ts), max(ts)
    (a0, a1), (b0, b1) = span(a), span(b)
    c.check(a0 < b1 and b0 < a1, "files do not overlap in time")
    for order in ((a, b), (b, a)):
        rc, got, err = c.replay(*order)
        c.check(rc == 0 and got == want, "order %s: exit %d, %d records vs %d: %s"
                % ([os.path.basename(x) for x in order], rc, len(got), len(want), err.strip()))
        c.check("2 merged at once" in err, "summary does not say files were merged: %r" % err)
    # mergecap's merge of the two replays the same.
    m = os.path.join(tmp, "merged.pcap")
    sh("mergecap", "-F", "pcap", "-w", m, b, a)
    c.check(c.replay(m)[1] == want, "mergecap's merge gives other records")


def convert(src, dst, mode):
    """Re-encapsulates an Ethernet capture as Linux cooked (SLL) pcapng or raw IP pcap."""
    code = r"""
import sys
from scapy.all import rdpcap, wrpcap, CookedLinux, Ether, raw
src, dst, mode = sys.argv[1:4]
out = []
for p in rdpcap(src):
    inner = p[Ether].payload
    if mode == "sll":
        q = CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6, src=bytes(6) + b"\0\0",
                        proto=p[Ether].type) / inner
    else:
        q = inner
    q.time = p.time
    out.append(q)
wrpcap(dst, out, linktype=113 if mode == "sll" else 101)
"""
    sh(PYTHON, "-c", code, src, dst, mode)


def case_linktypes(c, corpus, tmp):
    eth = os.path.join(corpus, "real_tls10_libpq.pcap")
    sll_src = os.path.join(corpus, "real_tls11_libpq.pcap")
    raw_src = os.path.join(corpus, "real_tls12_client_max.pcap")
    sll_pcap = os.path.join(tmp, "sll.pcap")
    sll = os.path.join(tmp, "sll.pcapng")
    raw = os.path.join(tmp, "raw.pcap")
    convert(sll_src, sll_pcap, "sll")
    sh("editcap", "-F", "pcapng", sll_pcap, sll)
    convert(raw_src, raw, "raw")
    enc = sh("capinfos", "-T", "-E", sll, raw).stdout.decode()
    c.check("linux-sll" in enc and "rawip" in enc, "conversion: %r" % enc)
    want = []
    for conv, orig in ((sll, sll_src), (raw, raw_src), (eth, eth)):
        _, recs, _ = c.replay(conv)
        _, orig_recs, _ = c.replay(orig)
        c.check(recs == orig_recs and recs, "%s: records differ from the Ethernet original's"
                % os.path.basename(conv))
        want += recs
    rc, got, err = c.replay(raw, eth, sll)
    c.check(rc == 0, "mixed: exit %d (%s)" % (rc, err.strip()))
    c.check(sorted(got) == sorted(want) and len(got) == len(want),
            "mixed job: %d records, want %d" % (len(got), len(want)))
    ts = [json.loads(l)["ts"] for l in got]
    c.check(ts == sorted(ts), "mixed job: records not in time order")


def case_compressed(c, corpus, tmp):
    names = ["real_tls13_default", "real_fail_no_shared_cipher", "real_gssenc_request"]
    plain = [os.path.join(corpus, n + ".pcap") for n in names]
    _, want, _ = c.replay(*plain)
    c.check(len(want) >= 3, "%d records from the plain files" % len(want))
    d = os.path.join(tmp, "arch")
    os.makedirs(os.path.join(d, "sub"))
    for (tool, ext), src in zip((("gzip", "gz"), ("zstd", "zst"), ("xz", "xz")), plain):
        dst = os.path.join(d, "sub" if tool == "xz" else "", "capture-%s" % ext)
        with open(dst, "wb") as f:
            subprocess.run([tool, "-c", src], stdout=f, check=True)
    with open(os.path.join(d, "README.txt"), "w") as f:
        f.write("captures of the night shift\n")
    rc, got, err = c.replay(d)
    c.check(rc == 0 and got == want, "compressed directory: exit %d, %d records vs %d: %s"
            % (rc, len(got), len(want), err.strip()))
    c.check("1 file in directories skipped (not captures)" in err, "summary: %r" % err)
    c.check("\r" not in err, "a progress line although stderr is not a terminal: %r" % err)
    # --progress forces the progress line into a pipe. It is drawn at most every 0.5 s, looked
    # at every 16384 packets: standard input fed in two halves, a second apart.
    big = os.path.join(tmp, "big.pcap")
    with open(big, "wb") as f:
        subprocess.run(["mergecap", "-a", "-F", "pcap", "-w", "-"] +
                       [os.path.join(corpus, "real_pgbench_tls13_long.pcap")] * 8,
                       stdout=f, check=True)
    data = open(big, "rb").read()
    p = subprocess.Popen([c.binary, "replay", "--progress", "--format", "jsonl", "-o", os.devnull,
                          "-"], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write(data[:len(data) // 2])
    p.stdin.flush()
    time.sleep(1.0)
    p.stdin.write(data[len(data) // 2:])
    p.stdin.close()
    err = p.stderr.read().decode()
    p.wait()
    c.check(p.returncode == 0 and "\rfiles 0/1," in err and "MB/s" in err,
            "--progress: exit %d, %r" % (p.returncode, err[:300]))
    # Named explicitly, the README is an error (exit 1), the captures are still read.
    rc, got, err = c.replay(d, os.path.join(d, "README.txt"))
    c.check(rc == 1 and "README.txt" in err and got == want,
            "explicit README: exit %d, %r" % (rc, err))
    # Standard input, zstd.
    with open(os.path.join(d, "capture-zst"), "rb") as f:
        p = subprocess.run([c.binary, "replay", "--format", "jsonl", "-"], stdin=f,
                           capture_output=True, text=True)
    _, one, _ = c.replay(plain[1])
    c.check(p.returncode == 0 and p.stdout.splitlines() == one, "zstd on stdin")


def case_damaged(c, corpus, tmp):
    # In time order, the damaged one in the middle.
    names = ["real_tls12_client_max", "real_tls10_tls11_s_client", "real_cancel_request"]
    files = [os.path.join(tmp, n + ".pcap") for n in names]
    for n, f in zip(names, files):
        shutil.copy(os.path.join(corpus, n + ".pcap"), f)
    mid = files[1]
    size = os.path.getsize(mid)
    with open(mid, "r+b") as f:
        f.truncate(size * 2 // 3 + 5)  # mid-record, most likely; damage either way
    _, cut_alone, err_alone = c.replay(mid)
    c.check(cut_alone and "offset" in err_alone, "the cut file alone: %d records, %r"
            % (len(cut_alone), err_alone))
    want = []
    for f in files:
        want += c.replay(f)[1]
    for order in (files, files[::-1]):
        rc, got, err = c.replay(*order)
        c.check(rc == 1, "exit %d, want 1" % rc)
        c.check(mid in err and "offset" in err, "stderr does not name %s and an offset: %r"
                % (mid, err))
        c.check(got == want, "records: %d, want %d (the others' and the cut one's)"
                % (len(got), len(want)))
    # The same with the damaged file compressed.
    sh("zstd", "-q", "--rm", mid)
    rc, got, err = c.replay(tmp)
    c.check(rc == 1 and got == want and os.path.basename(mid) in err,
            "zstd'ed damaged file in a directory: exit %d, %d records: %r" % (rc, len(got), err))


def case_window(c, corpus, tmp):
    src = os.path.join(corpus, BIG + ".pcap")
    # editcap -A: at or after (inclusive); -B: before (exclusive); times in UTC (TZ=UTC).
    since, until_epoch = "2026-11-27T17:55:50.5Z", 1795802153  # 17:55:53 UTC
    until_text = "2026-11-27 17:55:53"
    sel = os.path.join(tmp, "window.pcap")
    sh("editcap", "-A", "2026-11-27 17:55:50.5", "-B", until_text, src, sel)
    _, want, _ = c.replay(sel)
    _, everything, _ = c.replay(src)
    c.check(0 < len(want) < len(everything), "window holds %d of %d records"
            % (len(want), len(everything)))
    rc, got, err = c.replay("--since", since, "--until", str(until_epoch), src)
    c.check(rc == 0 and got == want, "--since/--until: exit %d, %d records, editcap's %d: %s"
            % (rc, len(got), len(want), err.strip()))
    n_all = int(sh("capinfos", "-T", "-r", "-c", src).stdout.split()[-1])
    n_sel = int(sh("capinfos", "-T", "-r", "-c", sel).stdout.split()[-1])
    c.check("%d packets read" % n_all in err and "before --since" in err,
            "summary does not count the window: %r" % err)
    import re
    m = re.search(r"(\d+) before --since, (\d+) at or after --until", err)
    c.check(m is not None and int(m.group(1)) + int(m.group(2)) == n_all - n_sel,
            "dropped counts %r, want %d in all" % (m and m.groups(), n_all - n_sel))
    # Same instant with an offset, and as epoch with a fraction.
    rc, got2, _ = c.replay("--since", "2026-11-27T18:55:50.5+01:00", "--until", until_text
                           .replace(" ", "T") + "Z", src)
    c.check(got2 == want, "--since with +01:00 offset differs")
    rc, got3, _ = c.replay("--since", "1795802150.5", "--until", str(until_epoch), src)
    c.check(got3 == want, "--since as epoch seconds with a fraction differs")

    # --filter: tcpdump's selection with the same expression.
    ports = client_ports(src)
    expr = "tcp port %d or tcp port %d" % (ports[1], ports[3])
    fsel = os.path.join(tmp, "filter.pcap")
    sh("tcpdump", "-r", src, "-w", fsel, expr)
    _, fwant, _ = c.replay(fsel)
    rc, fgot, err = c.replay("--filter", expr, src)
    c.check(rc == 0 and fgot == fwant and len(fwant) == 2,
            "--filter: exit %d, %d records, tcpdump's %d" % (rc, len(fgot), len(fwant)))
    c.check("not matching --filter" in err, "summary does not count the filter: %r" % err)

    for bad in (["--since", "yesterday"], ["--until", "2026-02-30T00:00:00Z"],
                ["--filter", "tcp prot 5432"], ["--since", "20", "--until", "10"]):
        p = subprocess.run([c.binary, "replay", *bad, src], capture_output=True, text=True)
        c.check(p.returncode == 2 and bad[0] in p.stderr + " ".join(bad[2:]),
                "%s: exit %d, %r" % (bad, p.returncode, p.stderr))


def main():
    binary, shared, case = sys.argv[1:4]
    corpus = os.path.join(shared, "corpus")
    c = Checker(binary)
    with tempfile.TemporaryDirectory() as tmp:
        globals()["case_" + case](c, corpus, tmp)
    print("%d passed, %d failed" % (c.passed, c.failed))
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
