#!/usr/bin/env python3
"""Replay throughput: pgtlsmon against its floors and its peers, on one file, in one run.

  cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release && cmake --build build-release -j2
  python3 bench/run.py --build build-release            # ~1 GB workload (20000 sessions)
  python3 bench/run.py --build build-release --quick    # ~58 MB workload (1000 sessions)

Every reader reads the same cached pcap (made by shared/bench/make-workload, kept in
$PGTLS_BENCH_DIR, default /tmp/pgtlsmon-bench, and regenerated only when missing) with the
page cache warm.  The runs are interleaved round by round (reader A, B, C, ..., then again)
so that a change in background load hits every reader alike.  Each run is measured as wall
seconds, user+sys CPU seconds and peak RSS (os.wait4's rusage).

Readers (a missing tool or a failing peer is reported, not fatal):
  floor_read        bench/floor_read.cc: read() into one 1 MiB buffer, walk the pcap headers
  libpcap           bench/floor_libpcap.cc: pcap_open_offline + pcap_next_ex, count only
  libpcap_fopen     the same with fopen + setvbuf(256 KiB) + pcap_fopen_offline
  tcpdump           tcpdump -r FILE -w /dev/null 'tcp port 5432'
  tshark            the ClientHello/ServerHello field extraction (fewer runs: it is slow)
  ndpiReader        ndpiReader -q -i FILE (nDPI's demo reader; DPI on every flow)
  dd                dd if=FILE of=/dev/null bs=1M: the read floor of issue 14
  zstd_d            zstd -d FILE.zst -o /dev/null: the decompression floor
  pgtlsmon          pgtlsmon replay --format jsonl --threads 1 FILE, single thread
  pgtlsmon_t2       the same with --threads 2 (one reader, two workers)
  pgtlsmon_rot60    the workload split into 60 files (cached next to it), given together,
  pgtlsmon_rot60_t2 with 1 and 2 threads
  pgtlsmon_zst      FILE.zst (the workload compressed with zstd, cached), 1 and 2 threads
  pgtlsmon_zst_t2

pgtlsmon's records are checked on every run against FILE.expected.json (sessions per
negotiated version and plaintext, cipher suites, HelloRetryRequests, IPv6 sessions); a
mismatch or a non-zero exit is fatal (exit 1).  The floors' packet/byte counts and tshark's
hello counts are checked too, but only reported.

The results go to stdout as a markdown table and, for a full run, to docs/BENCHMARKS.md
(regenerated whole; --quick runs leave it alone unless --write-docs).
"""
import argparse
import collections
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FULL_SESSIONS = 20000
QUICK_SESSIONS = 1000
PG_PORT = 5432
TLS_VERSION_NAMES = {"0x0300": "SSLv3", "0x0301": "TLSv1", "0x0302": "TLSv1.1",
                     "0x0303": "TLSv1.2", "0x0304": "TLSv1.3"}
TSHARK_FIELDS = ["tcp.stream", "tls.handshake.type", "tls.handshake.version",
                 "tls.handshake.extensions.supported_version", "tls.handshake.ciphersuite"]
# pgtlsmon is compared with these, in this order.
RATIO_BASES = ["dd", "floor_read", "libpcap", "libpcap_fopen", "tcpdump", "tshark",
               "ndpiReader"]


class Fatal(Exception):
    """pgtlsmon gave a wrong answer or failed: the benchmark must not report it."""


# --------------------------------------------------------------------------------------
# Workload
# --------------------------------------------------------------------------------------


def ensure_workload(bench_dir, sessions, generator):
    """Returns (pcap path, expected dict); generates the pair only when missing or stale."""
    os.makedirs(bench_dir, exist_ok=True)
    pcap = os.path.join(bench_dir, f"pg-{sessions}.pcap")
    sidecar = pcap + ".expected.json"
    exp = None
    if os.path.exists(pcap) and os.path.exists(sidecar):
        try:
            with open(sidecar) as f:
                exp = json.load(f)
            if (exp["args"]["sessions"] != sessions or
                    os.path.getsize(pcap) != exp["file_bytes"]):
                exp = None
        except (OSError, ValueError, KeyError):
            exp = None
    if exp is not None:
        log(f"workload: {pcap} (cached)")
        return pcap, exp
    if not os.path.exists(generator):
        sys.exit(f"run.py: workload generator {generator} not found (--make-workload)")
    # Write under a temporary name and rename, so an interrupted generation is never
    # mistaken for a cached workload.
    tmp = os.path.join(bench_dir, f".pg-{sessions}.{os.getpid()}.pcap")
    log(f"workload: generating {pcap} ({sessions} sessions) ...")
    t0 = time.monotonic()
    try:
        subprocess.run([sys.executable, generator, "--sessions", str(sessions),
                        "--output", tmp], check=True, stdout=subprocess.PIPE, text=True)
        os.replace(tmp + ".expected.json", sidecar)
        os.replace(tmp, pcap)
    finally:
        for p in (tmp, tmp + ".expected.json"):
            if os.path.exists(p):
                os.unlink(p)
    log(f"workload: generated in {time.monotonic() - t0:.1f} s")
    with open(sidecar) as f:
        return pcap, json.load(f)


def ensure_vxlan_copy(pcap):
    """The workload with every frame wrapped in VXLAN (UDP 4789, IPv4 underlay), as AWS VPC
    Traffic Mirroring delivers it: made once next to the workload (plain struct packing:
    scapy would take minutes on the full file) and regenerated when older than it."""
    out = pcap[:-len(".pcap")] + ".vxlan.pcap"
    if os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(pcap):
        log(f"workload: {out} (cached)")
        return out
    log(f"workload: wrapping {pcap} in VXLAN ...")
    t0 = time.monotonic()
    outer_mac = bytes.fromhex("020000000102020000000101") + b"\x08\x00"
    vxlan = struct.pack("!II", 0x08000000, 4242 << 8)
    tmp = out + f".{os.getpid()}.tmp"
    with open(pcap, "rb") as src, open(tmp, "wb") as dst:
        head = src.read(24)
        end = "<" if struct.unpack("<I", head[:4])[0] in (0xA1B2C3D4, 0xA1B23C4D) else ">"
        if struct.unpack(end + "I", head[20:24])[0] != 1:
            sys.exit(f"run.py: {pcap} is not Ethernet: cannot wrap it in VXLAN")
        dst.write(head)
        rec = struct.Struct(end + "IIII")
        while True:
            h = src.read(16)
            if len(h) < 16:
                break
            sec, frac, caplen, wirelen = rec.unpack(h)
            frame = src.read(caplen)
            udp_len = 16 + wirelen
            ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0x4000, 64, 17,
                                       0, bytes([198, 51, 100, 1]), bytes([198, 51, 100, 2])))
            csum = sum(struct.unpack("!10H", ip))
            csum = (csum & 0xFFFF) + (csum >> 16)
            csum = (csum & 0xFFFF) + (csum >> 16)
            ip[10:12] = struct.pack("!H", ~csum & 0xFFFF)
            udp = struct.pack("!HHHH", 49152, 4789, udp_len, 0)
            prefix = outer_mac + bytes(ip) + udp + vxlan  # 50 bytes
            dst.write(rec.pack(sec, frac, caplen + 50, wirelen + 50))
            dst.write(prefix)
            dst.write(frame)
    os.replace(tmp, out)
    log(f"workload: wrapped in {time.monotonic() - t0:.1f} s")
    return out


def ensure_rotated_copy(pcap, parts):
    """The workload split into `parts` classic pcap files of equal packet counts (what
    `editcap -c` or `tcpdump -C` makes), in a directory next to it, names in time order;
    made once and regenerated when older than the workload. Returns the file list."""
    out_dir = pcap[:-len(".pcap")] + f".rot{parts}"
    names = [os.path.join(out_dir, f"part-{i:03d}.pcap") for i in range(parts)]
    if all(os.path.exists(n) and os.path.getmtime(n) >= os.path.getmtime(pcap) for n in names):
        log(f"workload: {out_dir}/ (cached, {parts} files)")
        return names
    log(f"workload: splitting {pcap} into {parts} files ...")
    t0 = time.monotonic()
    tmp = out_dir + f".{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    with open(pcap, "rb") as src:
        head = src.read(24)
        end = "<" if struct.unpack("<I", head[:4])[0] in (0xA1B2C3D4, 0xA1B23C4D) else ">"
        rec = struct.Struct(end + "IIII")
        offsets = []  # every record's offset: a first pass counts them
        pos = 24
        while True:
            h = src.read(16)
            if len(h) < 16:
                break
            caplen = rec.unpack(h)[2]
            offsets.append(pos)
            pos += 16 + caplen
            src.seek(caplen, 1)
        offsets.append(pos)
        per = -(-(len(offsets) - 1) // parts)
        for i, name in enumerate(names):
            lo = offsets[min(i * per, len(offsets) - 1)]
            hi = offsets[min((i + 1) * per, len(offsets) - 1)]
            src.seek(lo)
            with open(os.path.join(tmp, os.path.basename(name)), "wb") as dst:
                dst.write(head)
                left = hi - lo
                while left > 0:
                    chunk = src.read(min(left, 1 << 22))
                    dst.write(chunk)
                    left -= len(chunk)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    log(f"workload: split in {time.monotonic() - t0:.1f} s")
    return names


def ensure_zstd_copy(pcap):
    """FILE.zst (zstd -3, the default level), made once next to the workload."""
    out = pcap + ".zst"
    if os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(pcap):
        log(f"workload: {out} (cached)")
        return out
    if shutil.which("zstd") is None:
        return None
    log(f"workload: compressing {pcap} with zstd ...")
    t0 = time.monotonic()
    tmp = out + f".{os.getpid()}.tmp"
    subprocess.run(["zstd", "-q", "-f", "-T0", pcap, "-o", tmp], check=True)
    os.replace(tmp, out)
    log(f"workload: compressed in {time.monotonic() - t0:.1f} s "
        f"({os.path.getsize(out) / 1e6:.0f} MB)")
    return out


def pgtlsmon_reads(binary, capture):
    """Whether this pgtlsmon replays `capture` (a small file in a format it may not know
    yet), and its complaint when it does not."""
    try:
        r = subprocess.run([binary, "replay", "--format", "jsonl", "--threads", "1", capture],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           timeout=60)
        return r.returncode == 0, r.stderr.strip()[-200:]
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)


def warm_page_cache(path, quiet=False):
    """cat FILE > /dev/null, and warn when the file cannot stay cached."""
    size = os.path.getsize(path)
    avail = meminfo().get("MemAvailable")
    if avail is not None and size > avail * 0.8:
        log(f"warning: {path} ({size >> 20} MiB) may not fit in the page cache "
            f"({avail >> 20} MiB available): runs will measure the disk")
    t0 = time.monotonic()
    with open(path, "rb", buffering=0) as f:
        while f.read(1 << 22):
            pass
    if not quiet:
        log(f"page cache warmed ({size / 1e6:.0f} MB in {time.monotonic() - t0:.2f} s)")


# --------------------------------------------------------------------------------------
# Answer checks
# --------------------------------------------------------------------------------------


def check_counts(stdout_path, exp):
    """The floors print 'packets=N bytes=B'."""
    with open(stdout_path) as f:
        text = f.read()
    m = re.search(r"packets=(\d+) bytes=(\d+)", text)
    if not m:
        return "no counts in output"
    got = (int(m.group(1)), int(m.group(2)))
    want = (exp["packets"], exp["frame_bytes"])
    if got != want:
        return f"packets/bytes {got[0]}/{got[1]}, expected {want[0]}/{want[1]}"
    return None


def check_tshark(stdout_path, exp):
    """One line per frame with a hello: ServerHellos per version and ClientHellos."""
    server_hellos = collections.Counter()
    client_hellos = 0
    with open(stdout_path) as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if len(cols) < 4:
                continue
            types = cols[1].split(",")
            client_hellos += types.count("1")
            if "2" in types:
                supported = [v for v in cols[3].split(",") if v]
                version = supported[-1] if supported else cols[2].split(",")[0]
                server_hellos[TLS_VERSION_NAMES.get(version, version)] += 1
    problems = []
    if dict(server_hellos) != {k: v for k, v in exp["server_hello_messages"].items() if v}:
        problems.append(f"ServerHellos {dict(sorted(server_hellos.items()))}, "
                        f"expected {exp['server_hello_messages']}")
    if client_hellos != exp["client_hello_messages"]:
        problems.append(f"ClientHellos {client_hellos}, expected {exp['client_hello_messages']}")
    return "; ".join(problems) or None


def summarise_records(stdout_path):
    """Counts pgtlsmon's JSON-lines records the way FILE.expected.json counts sessions."""
    sessions = collections.Counter()
    outcomes = collections.Counter()
    ciphers = collections.Counter()
    hrr = ipv6 = records = 0
    with open(stdout_path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as e:
                raise Fatal(f"pgtlsmon output line {lineno} is not JSON: {e}") from None
            records += 1
            outcome = rec.get("outcome")
            outcomes[outcome] += 1
            tls = rec.get("tls") or {}
            if outcome == "tls":
                sessions[tls.get("version")] += 1
                ciphers[tls.get("cipher_suite")] += 1
            elif outcome == "plaintext":
                sessions["plaintext"] += 1
            if (rec.get("server_hello") or {}).get("hello_retry_request"):
                hrr += 1
            if ":" in str((rec.get("client") or {}).get("ip", "")):
                ipv6 += 1
    return {"records": records, "sessions": sessions, "outcomes": outcomes,
            "tls_cipher_suites": ciphers, "hello_retry_requests": hrr, "ipv6_sessions": ipv6}


def check_pgtlsmon_vxlan(stdout_path, exp):
    """The bare workload's answer, and every record names the VXLAN tunnel."""
    problem = check_pgtlsmon(stdout_path, exp)
    with open(stdout_path) as f:
        untunnelled = sum(1 for line in f
                          if line.strip() and (json.loads(line).get("tunnel") or {}).get("type")
                          != "vxlan")
    if untunnelled:
        problem = (problem + "\n  " if problem else "") + f"{untunnelled} records without tunnel"
    return problem


def check_pgtlsmon(stdout_path, exp):
    got = summarise_records(stdout_path)
    want_sessions = {k: v for k, v in exp["sessions"].items() if v}
    want_outcomes = {"tls": sum(v for k, v in want_sessions.items() if k != "plaintext"),
                     "plaintext": want_sessions.get("plaintext", 0)}
    want = {
        "records": sum(want_sessions.values()),
        "outcomes": {k: v for k, v in want_outcomes.items() if v},
        "sessions": want_sessions,
        "tls_cipher_suites": exp["tls_cipher_suites"],
        "hello_retry_requests": exp["hello_retry_requests"],
        "ipv6_sessions": exp["ipv6_sessions"],
    }
    problems = []
    for key, value in want.items():
        have = got[key]
        if isinstance(have, collections.Counter):
            have = dict(have)
        if have != value:
            problems.append(f"{key}: got {json.dumps(have, sort_keys=True)}, "
                            f"expected {json.dumps(value, sort_keys=True)}")
    return "\n  ".join(problems) or None


# --------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------


class Reader:
    def __init__(self, name, argv, reps, check=None, note="", fatal=False, missing=None):
        self.name = name
        self.argv = argv
        self.reps = reps
        self.check = check
        self.note = note
        self.fatal = fatal          # a failure or wrong answer aborts the benchmark
        self.missing = missing      # why the reader cannot run, or None
        self.runs = []              # dicts: wall, cpu, rss_kib
        self.failure = None         # first failure, for a non-fatal reader
        self.answer = "n/a" if check is None else None
        self.file_bytes = None      # the input's size when it is not the workload itself

    def command(self):
        return " ".join(shlex.quote(a) for a in self.argv)


# CMake target -> source in bench/.
HELPERS = {"pgtls_floor_read": "floor_read.cc", "pgtls_floor_libpcap": "floor_libpcap.cc",
           "pgtls_bench_launch": "launch.cc"}


def find_helper(build, name, bench_dir):
    """<build>/bench/NAME, else compile its source into the bench dir (CMake is the
    normal route; this fallback keeps the floors available while the rest of the tree
    does not configure)."""
    path = os.path.join(build, "bench", name)
    if os.access(path, os.X_OK):
        return path, None
    src = os.path.join(REPO, "bench", HELPERS[name])
    out_dir = os.path.join(bench_dir, "bin")
    out = os.path.join(out_dir, name)
    if os.access(out, os.X_OK) and os.path.getmtime(out) >= os.path.getmtime(src):
        return out, "built by run.py (no CMake target in --build)"
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if not cxx:
        return None, f"{path} missing and no C++ compiler to build it"
    os.makedirs(out_dir, exist_ok=True)
    cmd = [cxx, "-std=c++20", "-O3", "-DNDEBUG", "-Wall", "-Wextra", "-Wconversion",
           "-Wshadow", "-Werror", src, "-o", out]
    if "libpcap" in name:
        cmd.append("-lpcap")
    log(f"{path} missing: building {out} with {os.path.basename(cxx)} -O3 (as Release)")
    r = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        return None, f"{path} missing and building it failed: {r.stderr.strip()[:300]}"
    return out, "built by run.py (no CMake target in --build)"


def find_pgtlsmon(build, explicit):
    candidates = [explicit] if explicit else [os.path.join(build, "pgtlsmon"),
                                              os.path.join(build, "app", "pgtlsmon")]
    for c in candidates:
        if c and os.access(c, os.X_OK) and os.path.isfile(c):
            return c
    return None


def pgtlsmon_accepts_threads(binary):
    text = ""
    for args in (["replay", "--help"], ["--help"]):
        try:
            r = subprocess.run([binary, *args], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=20)
            text += r.stdout
        except (OSError, subprocess.TimeoutExpired):
            pass
    return re.search(r"--threads\b", text) is not None


def build_readers(args, pcap, bench_dir):
    reps, tshark_reps = args.reps, args.tshark_reps
    readers = []

    for name, floor, extra, note in [
            ("floor_read", "pgtls_floor_read", [],
             "read() into one reused 1 MiB buffer, walk the record headers; the floor"),
            ("libpcap", "pgtls_floor_libpcap", [],
             "pcap_open_offline + pcap_next_ex, count only"),
            ("libpcap_fopen", "pgtls_floor_libpcap", ["--fopen"],
             "fopen + setvbuf(256 KiB) + pcap_fopen_offline + pcap_next_ex")]:
        path, why = find_helper(args.build, floor, bench_dir)
        if path is None:
            readers.append(Reader(name, [floor, *extra, pcap], reps, missing=why, note=note))
        else:
            readers.append(Reader(name, [path, *extra, pcap], reps, check=check_counts,
                                  note=note + (f"; {why}" if why else "")))

    def tool(name, argv, r, check=None, note=""):
        exe = shutil.which(argv[0])
        if exe is None:
            readers.append(Reader(name, argv, r, note=note, missing=f"{argv[0]} not installed"))
        else:
            readers.append(Reader(name, argv, r, check=check, note=note))

    tool("tcpdump", ["tcpdump", "-r", pcap, "-w", "/dev/null", f"tcp port {PG_PORT}"], reps,
         note="BPF filter, writes every matching packet")
    tshark_argv = ["tshark", "-n", "-r", pcap, "-d", f"tcp.port=={PG_PORT},pgsql",
                   "-Y", "tls.handshake.type==1 or tls.handshake.type==2", "-T", "fields"]
    for field in TSHARK_FIELDS:
        tshark_argv += ["-e", field]
    tool("tshark", tshark_argv, tshark_reps, check=check_tshark,
         note="full dissection, hello fields; answer = ClientHello/ServerHello counts")
    tool("ndpiReader", ["ndpiReader", "-q", "-i", pcap], reps,
         note="nDPI 'demo' reader, DPI on every flow, quiet")

    tool("dd", ["dd", f"if={pcap}", "of=/dev/null", "bs=1M"], reps,
         note="the read floor of issue 14: read() of 1 MiB blocks, nothing looked at")
    if args.zst:
        tool("zstd_d", ["zstd", "-d", "-q", "-f", args.zst, "-o", "/dev/null"], reps,
             note="decompression alone: the floor for compressed input (MB/s of the "
                  "uncompressed workload)")

    binary = find_pgtlsmon(args.build, args.pgtlsmon)
    base = ["replay", "--format", "jsonl", "--threads", "1", pcap]
    if binary is None:
        why = f"no pgtlsmon binary in {args.build} (or --pgtlsmon)"
        readers.append(Reader("pgtlsmon", ["pgtlsmon", *base], reps, missing=why))
    else:
        def pg(name, threads, inputs, note, check=check_pgtlsmon, missing=None):
            r = Reader(name, [binary, "replay", "--format", "jsonl", "--threads", str(threads),
                              *inputs], reps, check=check, fatal=True, missing=missing,
                       note=note + "; answer checked every run")
            readers.append(r)
            return r

        pg("pgtlsmon", 1, [pcap], "single thread")
        threads_ok = pgtlsmon_accepts_threads(binary)
        pg("pgtlsmon_t2", 2, [pcap], "--threads 2: one reader, 2 workers",
           missing=None if threads_ok else "pgtlsmon --help lists no --threads")
        # The same connections wrapped in VXLAN (issue 15): the cost of decapsulation.
        if args.vxlan_pcap:
            vx = pg("pgtlsmon_vxlan", 1, [args.vxlan_pcap], "single thread, the workload "
                    "wrapped in VXLAN (+50 bytes a packet)", check=check_pgtlsmon_vxlan)
            vx.file_bytes = os.path.getsize(args.vxlan_pcap)
        if args.rotated:
            for n in (1, 2):
                r = pg("pgtlsmon_rot60" + ("_t2" if n == 2 else ""), n, args.rotated,
                       f"the workload in {len(args.rotated)} files given together, "
                       f"--threads {n}")
                r.file_bytes = sum(os.path.getsize(f) for f in args.rotated)
        if args.zst:
            ok, why = args.zst_ok
            for n in (1, 2):
                pg("pgtlsmon_zst" + ("_t2" if n == 2 else ""), n, [args.zst],
                   f"FILE.zst (zstd), --threads {n} (MB/s of the uncompressed workload)",
                   missing=None if ok else f"pgtlsmon cannot read zstd: {why}")
        for n in args.threads_scaling:
            pg(f"pgtlsmon_t{n}", n, [pcap], f"--threads {n} (--threads-scaling)")

    wanted = set(args.only) if args.only else None
    out = []
    for r in readers:
        family = r.name.split("_")[0] if r.name.startswith("pgtlsmon") else r.name
        if r.name in args.skip or family in args.skip:
            r.missing = r.missing or "skipped (--skip)"
        if wanted is not None and r.name not in wanted and family not in wanted:
            continue
        out.append(r)
    return out


# --------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------


def run_once(argv, stdout_path, stderr_path, timeout, launcher):
    """Runs argv once; returns (exit status, wall s, user+sys s, peak RSS KiB).

    With the launcher (bench/launch.cc) the figures are the reader's own.  Without it,
    os.wait4 on a child of this Python process: wall time includes Python's fork/exec,
    and ru_maxrss cannot be below this process's own RSS (see launch.cc)."""
    result_path = stdout_path + ".rusage"
    if launcher:
        argv = [launcher, result_path, *argv]
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=True)
        timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
    if not launcher:
        return proc.returncode, wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss
    try:
        with open(result_path) as f:
            fields = dict(kv.split("=", 1) for kv in f.read().split())
        os.unlink(result_path)
    except (OSError, ValueError):
        return (proc.returncode or 125), wall, 0.0, 0
    return (int(fields["status"]), int(fields["wall_ns"]) / 1e9,
            (int(fields["utime_us"]) + int(fields["stime_us"])) / 1e6,
            int(fields["maxrss_kib"]))


def cpu_times():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]), idle


def busy_cpus(interval=0.25):
    """How many CPUs' worth of other work ran during `interval` (we are asleep)."""
    try:
        t0, i0 = cpu_times()
        time.sleep(interval)
        t1, i1 = cpu_times()
    except (OSError, ValueError, IndexError):
        return None
    if t1 <= t0:
        return 0.0
    return (1 - (i1 - i0) / (t1 - t0)) * (os.cpu_count() or 1)


def wait_for_quiet(max_wait, threshold):
    """Samples the other load before a run; with max_wait > 0, waits (up to max_wait
    seconds) for it to drop below threshold CPUs.  Returns (busy CPUs, seconds waited)."""
    busy = busy_cpus()
    start = time.monotonic()
    while busy is not None and busy > threshold and time.monotonic() - start < max_wait:
        busy = busy_cpus(1.0)
    return busy, time.monotonic() - start


def measure(readers, exp, scratch, timeout, launcher, wait_idle=0.0, idle_threshold=0.5):
    active = [r for r in readers if r.missing is None]
    rounds = max((r.reps for r in active), default=0)
    for i in range(rounds):
        for r in active:
            if r.failure is not None or i >= r.reps:
                continue
            busy, waited = wait_for_quiet(wait_idle, idle_threshold)
            out = os.path.join(scratch, f"out-{r.name}.txt")
            err = os.path.join(scratch, f"err-{r.name}.txt")
            code, wall, cpu, rss = run_once(r.argv, out, err, timeout, launcher)
            if code != 0:
                with open(err, errors="replace") as f:
                    tail = f.read().strip()[-400:]
                msg = f"exit {code}" + (f": {tail}" if tail else "")
                if r.fatal:
                    raise Fatal(f"{r.name} failed ({r.command()}): {msg}\n  (stderr: {err})")
                r.failure = msg
                log(f"  {r.name}: FAILED ({msg.splitlines()[0]})")
                continue
            if r.check is not None:
                problem = r.check(out, exp)
                if problem:
                    if r.fatal:
                        raise Fatal(f"{r.name} gave a wrong answer ({r.command()}):\n  {problem}"
                                    f"\n  (its records: {out})")
                    r.answer = "MISMATCH: " + problem
                elif r.answer is None:
                    r.answer = "ok"
            r.runs.append({"wall": wall, "cpu": cpu, "rss_kib": rss, "busy_before": busy,
                           "waited": waited})
            log(f"  round {i + 1}: {r.name:14s} {wall:8.3f} s wall {cpu:8.3f} s cpu "
                f"{rss / 1024:7.1f} MiB" + ("" if busy is None else
                                            f"  (other load before: {busy:.2f} CPUs)"))


# --------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------


def stats(r, exp):
    walls = [x["wall"] for x in r.runs]
    wall = statistics.median(walls)
    return {
        "runs": len(walls),
        "wall": wall, "wall_min": min(walls), "wall_max": max(walls),
        "cpu": statistics.median(x["cpu"] for x in r.runs),
        "rss_mib": max(x["rss_kib"] for x in r.runs) / 1024,
        "mpps": exp["packets"] / wall / 1e6,
        "mbps": (r.file_bytes or exp["file_bytes"]) / wall / 1e6,
    }


def fmt_s(x):
    return f"{x:.3f}" if x < 10 else f"{x:.2f}" if x < 100 else f"{x:.1f}"


def results_table(readers, exp):
    rows = ["| reader | runs | wall median (s) | wall min–max (s) | CPU user+sys (s) "
            "| Mpackets/s | MB/s | peak RSS (MiB) | answer |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in readers:
        if r.missing or not r.runs:
            why = r.missing or f"failed: {r.failure}"
            rows.append(f"| {r.name} | 0 | – | – | – | – | – | – | {md_escape(why)} |")
            continue
        s = stats(r, exp)
        answer = r.answer if r.failure is None else f"{r.answer}; later run failed: {r.failure}"
        rows.append(f"| {r.name} | {s['runs']} | {fmt_s(s['wall'])} | "
                    f"{fmt_s(s['wall_min'])}–{fmt_s(s['wall_max'])} | {fmt_s(s['cpu'])} | "
                    f"{s['mpps']:.2f} | {s['mbps']:.0f} | {s['rss_mib']:.1f} | "
                    f"{md_escape(answer)} |")
    return "\n".join(rows)


def ratio_table(readers, exp):
    by_name = {r.name: r for r in readers if r.runs and not r.missing}
    subjects = [n for n in ("pgtlsmon", "pgtlsmon_t2") if n in by_name]
    bases = [n for n in RATIO_BASES if n in by_name]
    if not subjects or not bases:
        return None
    rows = ["| | " + " | ".join(f"vs {b}" for b in bases) + " |",
            "|---|" + "---:|" * len(bases)]
    for s in subjects:
        ss = stats(by_name[s], exp)
        cells = []
        for b in bases:
            bs = stats(by_name[b], exp)
            cells.append(f"{ss['wall'] / bs['wall']:.3g}× wall, {ss['cpu'] / bs['cpu']:.3g}× CPU"
                         if bs["cpu"] > 0 else f"{ss['wall'] / bs['wall']:.3g}× wall")
        rows.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def targets_table(readers, exp):
    """pgtlsmon (single thread) against the issue's targets: within 2x of the read() floor,
    >= 100x faster than tshark, >= 10x faster than ndpiReader, peak RSS under 64 MiB."""
    by_name = {r.name: r for r in readers if r.runs and not r.missing}
    if "pgtlsmon" not in by_name:
        return None
    p = stats(by_name["pgtlsmon"], exp)
    rows = ["| target | measured | met |", "|---|---|---|"]

    def row(target, base, limit, slower_is_ratio):
        if base not in by_name:
            rows.append(f"| {target} | {base} not run | – |")
            return
        b = stats(by_name[base], exp)
        if slower_is_ratio:  # pgtlsmon / base <= limit
            w, c = p["wall"] / b["wall"], p["cpu"] / b["cpu"] if b["cpu"] > 0 else float("nan")
            ok = w <= limit
            rows.append(f"| {target} | {w:.2f}× ({c:.2f}× CPU) | {'yes' if ok else 'no'} |")
        else:  # base / pgtlsmon >= limit
            w, c = b["wall"] / p["wall"], b["cpu"] / p["cpu"] if p["cpu"] > 0 else float("nan")
            ok = w >= limit
            rows.append(f"| {target} | {w:.0f}× faster ({c:.0f}× CPU) | "
                        f"{'yes' if ok else 'no'} |")

    row("wall time within 2× of floor_read", "floor_read", 2.0, True)
    row("≥ 100× faster than tshark", "tshark", 100.0, False)
    row("≥ 10× faster than ndpiReader", "ndpiReader", 10.0, False)
    rows.append(f"| peak RSS under 64 MiB | {p['rss_mib']:.1f} MiB | "
                f"{'yes' if p['rss_mib'] < 64 else 'no'} |")
    if "pgtlsmon_t2" in by_name:
        t2 = stats(by_name["pgtlsmon_t2"], exp)
        rows.append(f"| --threads 2 scaling (single-thread wall / t2 wall) | "
                    f"{p['wall'] / t2['wall']:.2f}× (CPU {t2['cpu']:.2f} s vs {p['cpu']:.2f} s) "
                    "| – |")
    return "\n".join(rows)


def targets14_table(readers, exp):
    """Issue 14's goals on this machine: one thread <= 2.0x dd; all cores <= 1.3x dd; zstd
    input <= 1.2x `zstd -d`; peak RSS < 128 MiB with 60 files; and the 1 -> 2 threads growth."""
    by_name = {r.name: stats(r, exp) for r in readers if r.runs and not r.missing}
    rows = ["| goal | measured (wall; CPU in brackets) | met |", "|---|---|---|"]

    def ratio(goal, subject, base, limit):
        if subject not in by_name or base not in by_name:
            rows.append(f"| {goal} | {subject if subject not in by_name else base} not run | – |")
            return
        p, b = by_name[subject], by_name[base]
        w = p["wall"] / b["wall"]
        c = f" ({p['cpu'] / b['cpu']:.2f}× CPU)" if b["cpu"] > 0 else ""
        rows.append(f"| {goal} | {subject} {fmt_s(p['wall'])} s / {base} {fmt_s(b['wall'])} s "
                    f"= {w:.2f}×{c} | {'yes' if w <= limit else 'no'} |")

    ratio("1 thread ≤ 2.0× dd", "pgtlsmon", "dd", 2.0)
    ratio("all cores (2) ≤ 1.3× dd", "pgtlsmon_t2", "dd", 1.3)
    ratio("60 files, all cores ≤ 1.3× dd", "pgtlsmon_rot60_t2", "dd", 1.3)
    ratio("zstd input ≤ 1.2× `zstd -d`", "pgtlsmon_zst_t2", "zstd_d", 1.2)
    ratio("zstd input, 1 thread ≤ 1.2× `zstd -d`", "pgtlsmon_zst", "zstd_d", 1.2)
    rss = [by_name[n]["rss_mib"] for n in ("pgtlsmon_rot60", "pgtlsmon_rot60_t2") if n in by_name]
    if rss:
        rows.append(f"| peak RSS < 128 MiB with 60 files | {max(rss):.1f} MiB | "
                    f"{'yes' if max(rss) < 128 else 'no'} |")
    for one, two, what in (("pgtlsmon", "pgtlsmon_t2", "one file"),
                           ("pgtlsmon_rot60", "pgtlsmon_rot60_t2", "60 files"),
                           ("pgtlsmon_zst", "pgtlsmon_zst_t2", "zstd")):
        if one in by_name and two in by_name:
            a, b = by_name[one], by_name[two]
            rows.append(f"| throughput 1 → 2 threads, {what} | {a['mbps']:.0f} → {b['mbps']:.0f} "
                        f"MB/s: {a['wall'] / b['wall']:.2f}× (CPU {fmt_s(a['cpu'])} → "
                        f"{fmt_s(b['cpu'])} s) | – |")
    return "\n".join(rows)


# Where the time goes, by symbol category (first match wins).
PROFILE_CATEGORIES = [
    ("kernel: read() copy, page cache, syscalls", r"^\[k\]"),
    ("reading captures (FileSource, decompression)",
     r"capture::|ReadCaptures|ZSTD|zstd|inflate|lzma|HUF_|FSE_|pcap_"),
    ("decoding link/IP/TCP (packet_decoder)", r"parser::.*Decode|DecodeTcpSegment"),
    ("hand-off to workers (batches, queues, wake-ups)", r"ShardedPipeline|futex|__atomic|"
     r"sched_yield|pthread"),
    ("memory copies (libc memmove: read buffers; with threads the payload into batches)",
     r"memmove|memcpy"),
    ("connection tracking and TLS parsing (FlowTracker, tables)",
     r"FlowTracker|FlowTable|raw_hash_set|Connection|TcpStream|Tls|Hello|RecordOrder|"
     r"parser::"),
    ("records out (JSON, metrics)", r"exporter::|AppendJson|record_json|fmt::"),
    ("memory allocation", r"malloc|free|operator new|operator delete|_int_"),
]


def short_symbol(sym):
    """A C++ symbol without template arguments and parameter lists, at most 70 characters."""
    out, depth = [], 0
    for ch in sym:
        if ch in "<(":
            if depth == 0:
                out.append("<…>" if ch == "<" else "()")
            depth += 1
        elif ch in ">)":
            depth = max(depth - 1, 0)
        elif depth == 0:
            out.append(ch)
    text = "".join(out).replace("absl::debian3::container_internal::", "absl::")
    return text if len(text) <= 70 else text[:69] + "…"


def perf_report(data, sort):
    r = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", sort,
                        "--stdio", "-g", "none"], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    rows = []
    for line in r.stdout.splitlines():
        m = re.match(r"\s*([0-9.]+)%\s+(.*)$", line)
        if m and not line.lstrip().startswith("#"):
            rows.append((float(m.group(1)), m.group(2).strip()))
    return rows


def profile_section(binary, pcap, bench_dir):
    """perf record of `replay --threads 1` and `--threads 2` on the workload: where the samples
    fall, by category and by function (and by thread for 2 threads)."""
    if shutil.which("perf") is None:
        return "perf is not installed: no profile (`apt-get install linux-perf`)."
    parts = []
    for threads in (1, 2):
        data = os.path.join(bench_dir, f"perf-t{threads}.data")
        r = subprocess.run(["perf", "record", "-F", "4000", "-o", data, "--", binary, "replay",
                            "--format", "jsonl", "--threads", str(threads), pcap],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            return f"perf record failed: {r.stderr.strip()[-300:]}"
        rows = perf_report(data, "pid,sym" if threads > 1 else "sym")
        by_thread = collections.Counter()
        cats = collections.Counter()
        thread_cats = collections.defaultdict(collections.Counter)
        funcs = collections.Counter()
        for share, rest in rows:
            if threads > 1:
                tid, _, sym = rest.partition(" ")
                sym = sym.strip()
            else:
                tid, sym = "", rest
            by_thread[tid] += share
            for name, rx in PROFILE_CATEGORIES:
                if re.search(rx, sym):
                    break
            else:
                name = "other (startup, libc, ...)"
            cats[name] += share
            thread_cats[tid][name] += share
            funcs[(tid, short_symbol(sym))] += share
        total = sum(cats.values()) or 1.0
        title = ("1 thread" if threads == 1 else
                 "2 threads (thread 1 = the reader, which also merges and writes records)")
        parts.append(f"**--threads {threads}**: `perf record -F 4000 -- {os.path.basename(binary)}"
                     f" replay --format jsonl --threads {threads} FILE`, {title}.")
        parts.append("")
        if threads > 1:
            order = sorted(by_thread, key=lambda t: -by_thread[t])
            names = {t: ("reader" if i == 0 else f"worker {i}") for i, t in enumerate(order)}
            parts.append("Samples by thread: " + ", ".join(
                f"{names[t]} {by_thread[t] / total * 100:.0f} %" for t in order) + ".")
            parts.append("")
            reader = order[0]
            rtotal = by_thread[reader] or 1.0
            parts.append("The reader thread, where the rest waits: " + "; ".join(
                f"{name} {share / rtotal * 100:.0f} %"
                for name, share in thread_cats[reader].most_common(5)) + " of its samples.")
            parts.append("")
        parts.append("| category | share of samples |")
        parts.append("|---|---:|")
        for name, share in cats.most_common():
            parts.append(f"| {name} | {share / total * 100:.1f} % |")
        parts.append("")
        parts.append("| function" + (" (thread)" if threads > 1 else "") + " | share |")
        parts.append("|---|---:|")
        for (tid, sym), share in funcs.most_common(12):
            who = f" ({names[tid]})" if threads > 1 else ""
            parts.append(f"| `{md_escape(sym)}`{who} | {share / total * 100:.1f} % |")
        parts.append("")
    return "\n".join(parts)


def callgrind_section(binary, captures, bench_dir):
    """valgrind --tool=callgrind of `replay --threads 1` and `--threads 2` on `captures` (the
    first tenth of the rotated workload): instructions executed in user space, per thread,
    independent of the machine's load (perf's samples are not, and this VM has no hardware
    counters)."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
        return None
    totals = {}
    top = {}
    for threads in (1, 2):
        out = os.path.join(bench_dir, f"callgrind-t{threads}.out")
        for old in os.listdir(bench_dir):
            if old.startswith(os.path.basename(out)):
                os.unlink(os.path.join(bench_dir, old))
        r = subprocess.run(["valgrind", "--tool=callgrind", "--separate-threads=yes",
                            f"--callgrind-out-file={out}", binary, "replay", "--no-progress",
                            "--format", "jsonl", "--threads", str(threads), *captures],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            return f"callgrind failed: {r.stderr.strip()[-300:]}"
        files = sorted(f for f in os.listdir(bench_dir)
                       if f.startswith(os.path.basename(out) + "-"))
        for i, f in enumerate(files):
            path = os.path.join(bench_dir, f)
            with open(path) as fh:
                m = re.search(r"^(?:summary|totals): (\d+)", fh.read(), re.M)
            name = ("main" if threads == 1 else "reader" if i == 0 else f"worker {i}")
            totals[(threads, name)] = int(m.group(1)) if m else 0
            ann = subprocess.run(["callgrind_annotate", path], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True).stdout
            funcs = []
            for line in ann.splitlines():
                mm = re.match(r"\s*([0-9,]+) \(\s*([0-9.]+)%\)\s+(.*)$", line)
                if mm and "PROGRAM TOTALS" not in line:
                    sym, _, obj = mm.group(3).partition(" [")
                    sym = re.sub(r"^(?:\?\?\?|\S*?\.(?:c|cc|cpp|h|S|s)):", "", sym)
                    if sym.startswith("0x"):
                        sym = f"{os.path.basename(obj.rstrip(']'))} {sym}"
                    funcs.append(f"`{md_escape(short_symbol(sym))}` {mm.group(2)} %")
                if len(funcs) == 4:
                    break
            top[(threads, name)] = "; ".join(funcs)
    one = totals.get((1, "main"), 0)
    two = sum(v for (t, _), v in totals.items() if t == 2)
    reader = totals.get((2, "reader"), 0)
    lines = [f"`valgrind --tool=callgrind --separate-threads=yes -- "
             f"{os.path.basename(binary)} replay --format jsonl --threads 1|2 "
             f"{os.path.basename(os.path.dirname(captures[0]))}/part-000.pcap … "
             f"{os.path.basename(captures[-1])}` ({len(captures)} files of the 60, "
             f"{sum(os.path.getsize(c) for c in captures) / 1e6:.0f} MB; instructions in user "
             "space, the kernel's read() copy not included; startup, about 16 M instructions "
             "mostly in the dynamic linker, included).", "",
             "| run | thread | instructions (M) | top functions (share of the thread) |",
             "|---|---|---:|---|"]
    for (threads, name), n in totals.items():
        lines.append(f"| --threads {threads} | {name} | {n / 1e6:.1f} | {top[(threads, name)]} |")
    if one and reader:
        lines += ["", f"With 2 threads the process executes {two / one:.2f}× the instructions "
                  f"of one thread (the hand-off: batching, copying payloads into the batches, "
                  f"waking workers), and the reader alone {reader / one:.2f}×: with the "
                  f"kernel's read() copy on the reader too, {one / reader:.2f}× is the most "
                  "2 threads can gain over 1 on this input, however many cores are free."]
    return "\n".join(lines)


def md_escape(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def meminfo():
    out = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                parts = v.split()
                if parts and parts[0].isdigit():
                    out[k] = int(parts[0]) * 1024
    except OSError:
        pass
    return out


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": model, "nproc": os.cpu_count(), "kernel": platform.release(),
            "mem_gib": meminfo().get("MemTotal", 0) / (1 << 30)}


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def tool_versions(readers):
    def first_line(argv):
        try:
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, timeout=20)
            for line in r.stdout.splitlines():
                if line.strip() and "dangerous" not in line:
                    return line.strip()
        except (OSError, subprocess.TimeoutExpired):
            pass
        return None

    versions = {}
    names = {r.name for r in readers if not r.missing}
    if "tcpdump" in names or "libpcap" in names:
        try:
            r = subprocess.run(["tcpdump", "--version"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=20)
            for line in r.stdout.splitlines():
                if line.startswith(("tcpdump version", "libpcap version")):
                    versions[line.split(" version")[0]] = line.split("version", 1)[1].strip()
        except OSError:
            pass
    if "tshark" in names:
        v = first_line(["tshark", "--version"])
        m = re.search(r"\d+\.\d+\.\d+", v or "")
        versions["tshark"] = m.group(0) if m else v
    if "ndpiReader" in names:
        v = first_line(["ndpiReader", "-h"])
        versions["ndpiReader"] = v.replace("Welcome to ", "") if v else None
    for r in readers:
        if r.name == "pgtlsmon" and not r.missing:
            v = first_line([r.argv[0], "--version"])
            versions["pgtlsmon"] = v.removeprefix("pgtlsmon ").strip() if v else None
    try:
        rev = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        versions["source tree"] = rev.stdout.strip() or None
    except OSError:
        pass
    return {k: v for k, v in versions.items() if v}


def build_type(build):
    try:
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("CMAKE_BUILD_TYPE:"):
                    return line.split("=", 1)[1].strip() or "(empty)"
    except OSError:
        pass
    return None


def report(readers, exp, pcap, ctx):
    m = ctx["machine"]
    kinds = ", ".join(f"{k} {v}" for k, v in exp["sessions"].items())
    lines = [
        "# Replay throughput",
        "",
        "Generated by `bench/run.py` (see [bench/README.md](../bench/README.md)); do not edit "
        "by hand, rerun the command. eBPF capture cost and bytes to user space (bare and tunnelled): "
        "[BENCHMARKS-ebpf.md](BENCHMARKS-ebpf.md).",
        "",
        f"- Date: {ctx['date']}",
        f"- Command: `{ctx['command']}`",
        f"- Machine: {m['cpu']}, {m['nproc']} CPUs (nproc), {m['mem_gib']:.1f} GiB RAM, "
        f"Linux {m['kernel']}",
        f"- Load average (1/5/15 min) before: {ctx['load_before']}, after: {ctx['load_after']}"
        + (" (they count the benchmark's own runs)" if ctx["other_load"] else "")
        + (" — the machine was busy with other work, so expect noise" if ctx["busy"] else ""),
        "- Other work on the machine, sampled for 0.25 s before each run: "
        + (f"median {ctx['other_load'][0]:.2f}, max {ctx['other_load'][1]:.2f} CPUs busy"
           if ctx["other_load"] else "not measured")
        + (f"; waited {ctx['waited']:.0f} s in all for quiet (--wait-idle)"
           if ctx["waited"] >= 1 else ""),
        f"- Build: `{ctx['build']}` ({ctx['build_type'] or 'no CMakeCache.txt'})",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in ctx["versions"].items()),
        f"- Workload: `{pcap}` from `make-workload --sessions {exp['args']['sessions']}` "
        f"(seed {exp['args']['seed']}): {exp['file_bytes'] / 1e6:.0f} MB, "
        f"{exp['packets']} packets, {sum(exp['sessions'].values())} sessions ({kinds}; "
        f"{exp['ipv6_sessions']} over IPv6), at most {exp['max_concurrent_sessions']} "
        "concurrent",
        "- Method: page cache warmed first; readers interleaved round by round; "
        f"{ctx['reps']} runs each, tshark {ctx['tshark_reps']}; medians, with the min–max "
        "spread of wall time; CPU = user+sys of the process; peak RSS = max ru_maxrss"
        + ("" if ctx["launcher"] else " (measured from Python: includes the runner's ~20 MiB)")
        + "; "
        "Mpackets/s and MB/s from the median wall time and the file size.",
        "",
        "## Results",
        "",
        results_table(readers, exp),
        "",
    ]
    ratios = ratio_table(readers, exp)
    lines += ["## pgtlsmon relative to each reader", ""]
    if ratios:
        lines += ["Median wall time (and CPU time) of pgtlsmon divided by the reader's: "
                  "below 1 means pgtlsmon is faster.", "", ratios, ""]
    else:
        lines += ["No pgtlsmon figures in this run (" + "; ".join(
            f"{r.name}: {r.missing or r.failure}" for r in readers
            if r.name.startswith("pgtlsmon")) + ").", ""]
    targets = targets_table(readers, exp)
    if targets:
        lines += ["## Targets", "",
                  "The replay-speed issue's targets, from this run's medians (wall time; "
                  "CPU time in brackets, less sensitive to other load).", "", targets, ""]
    lines += ["## Targets (issue 14)", "",
              "Archive-scale replay on this 2-core machine, from this run's medians. "
              "`--threads 2` is one reader thread (reads, decompresses, decodes each packet "
              "once) and two workers owning connections by a hash of their addresses.", "",
              targets14_table(readers, exp), ""]
    if ctx.get("profile"):
        lines += ["## Profile", "", ctx["profile"], ""]
    lines += ["## Readers", "", "| reader | command | what it does |", "|---|---|---|"]
    for r in readers:
        cmd = r.command()
        if ctx.get("rotated"):
            cmd = cmd.replace(" ".join(ctx["rotated"]), "DIR.rot60/part-000.pcap … part-059.pcap")
        cmd = cmd.replace(pcap, "FILE").replace(REPO + os.sep, "")
        lines.append(f"| {r.name} | `{md_escape(cmd)}` | {md_escape(r.note)} |")
    lines.append("")
    return "\n".join(lines)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(REPO, "build-release"),
                    help="CMake build dir with pgtlsmon and bench/pgtls_floor_* "
                         "(default: build-release)")
    ap.add_argument("--quick", action="store_true",
                    help=f"small workload ({QUICK_SESSIONS} sessions, ~58 MB) instead of "
                         f"{FULL_SESSIONS} (~1.2 GB)")
    ap.add_argument("--sessions", type=int, help="workload size, overriding --quick")
    ap.add_argument("--reps", type=int, default=5, help="runs per reader (default 5)")
    ap.add_argument("--tshark-reps", type=int,
                    help="runs of tshark (default 2; it takes ~30 s per GB)")
    ap.add_argument("--skip", default="", help="comma-separated readers to leave out "
                    "(e.g. tshark,pgtlsmon); 'pgtlsmon' also skips pgtlsmon_t2")
    ap.add_argument("--only", default="", help="comma-separated readers to run, alone")
    ap.add_argument("--pgtlsmon", help="pgtlsmon binary (default: BUILD/pgtlsmon)")
    ap.add_argument("--bench-dir", default=os.environ.get("PGTLS_BENCH_DIR",
                                                          "/tmp/pgtlsmon-bench"),
                    help="workload cache and scratch dir ($PGTLS_BENCH_DIR, "
                         "default /tmp/pgtlsmon-bench)")
    ap.add_argument("--make-workload",
                    default=os.environ.get("PGTLS_MAKE_WORKLOAD", os.path.join(
                        os.path.dirname(REPO), "shared", "bench", "make-workload")),
                    help="the workload generator (default ../shared/bench/make-workload)")
    ap.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                    help="before each run, wait up to SECONDS for other work on the machine "
                         "to drop below --idle-threshold (default 0: measure, do not wait)")
    ap.add_argument("--idle-threshold", type=float, default=0.5, metavar="CPUS",
                    help="CPUs' worth of other work counted as quiet (default 0.5)")
    ap.add_argument("--threads-scaling", default="", metavar="N,M",
                    help="also run pgtlsmon --threads N for each N listed (beyond 2)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per run (default 900)")
    ap.add_argument("--profile", action="store_true",
                    help="after the runs, profile pgtlsmon --threads 1 and 2 with perf record "
                         "and add where the samples fall to the report")
    docs = ap.add_mutually_exclusive_group()
    docs.add_argument("--write-docs", action="store_true", default=None,
                      help="write docs/BENCHMARKS.md (the default for a full run)")
    docs.add_argument("--no-docs", dest="write_docs", action="store_false",
                      help="leave docs/BENCHMARKS.md alone (the default for --quick)")
    ap.add_argument("--docs", default=os.path.join(REPO, "docs", "BENCHMARKS.md"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.skip = {s for s in args.skip.split(",") if s}
    args.only = [s for s in args.only.split(",") if s]
    args.threads_scaling = [int(s) for s in args.threads_scaling.split(",") if s and s != "2"]
    sessions = args.sessions or (QUICK_SESSIONS if args.quick else FULL_SESSIONS)
    if args.tshark_reps is None:
        args.tshark_reps = min(args.reps, 2)
    if args.reps < 1 or args.tshark_reps < 1 or sessions < 1:
        ap.error("--reps, --tshark-reps and --sessions must be at least 1")
    if args.write_docs is None:
        args.write_docs = not args.quick and args.sessions is None and not args.only
    args.build = os.path.abspath(args.build)
    bench_dir = os.path.abspath(args.bench_dir)
    argv_text = " ".join(shlex.quote(a) for a in sys.argv[1:])
    command = f"python3 bench/run.py {argv_text}".strip()

    ctx = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "command": command, "machine": machine(), "build": os.path.relpath(args.build, REPO),
           "build_type": build_type(args.build), "reps": args.reps,
           "tshark_reps": args.tshark_reps}
    pcap, exp = ensure_workload(bench_dir, sessions, args.make_workload)
    args.vxlan_pcap = None if "pgtlsmon_vxlan" in args.skip else ensure_vxlan_copy(pcap)
    args.rotated = None if "pgtlsmon_rot60" in args.skip else ensure_rotated_copy(pcap, 60)
    ctx["rotated"] = args.rotated
    args.zst = None if "pgtlsmon_zst" in args.skip else ensure_zstd_copy(pcap)
    args.zst_ok = (False, "no zstd")
    binary = find_pgtlsmon(args.build, args.pgtlsmon)
    if args.zst and binary:
        probe = os.path.join(bench_dir, "probe.pcap.zst")
        subprocess.run(["zstd", "-q", "-f", os.path.join(REPO, "tests", "data", "pcaps",
                                                         "pg15-tls-versions.pcap"), "-o", probe],
                       check=True)
        args.zst_ok = pgtlsmon_reads(binary, probe)
    readers = build_readers(args, pcap, bench_dir)
    for r in readers:
        if r.missing:
            log(f"{r.name}: not run: {r.missing}")
    ctx["versions"] = tool_versions(readers)
    launcher, why = find_helper(args.build, "pgtls_bench_launch", bench_dir)
    if launcher is None:
        log(f"warning: {why}; measuring from Python (peak RSS includes the runner's)")
    ctx["launcher"] = launcher is not None

    # Outputs go to a directory of this run's own: two runs sharing the workload cache
    # must not check each other's half-written records.
    scratch = os.path.join(bench_dir, f"run-{os.getpid()}")
    os.makedirs(scratch, exist_ok=True)
    ctx["load_before"] = loadavg()
    warm_page_cache(pcap)
    for extra in [args.vxlan_pcap, args.zst] + (args.rotated or []):
        if extra:
            warm_page_cache(extra, quiet=extra in (args.rotated or []))
    try:
        measure(readers, exp, scratch, args.timeout, launcher, args.wait_idle,
                args.idle_threshold)
    except Fatal as e:
        log(f"\nFATAL: {e}")
        log("docs/BENCHMARKS.md not written: pgtlsmon's figures would be for a wrong answer.")
        return 1
    last = os.path.join(bench_dir, "last-run")
    shutil.rmtree(last, ignore_errors=True)
    os.replace(scratch, last)
    ctx["load_after"] = loadavg()
    loads = [float(x) for x in f"{ctx['load_before']} {ctx['load_after']}".split()
             if re.fullmatch(r"[0-9.]+", x)]
    samples = [x["busy_before"] for r in readers for x in r.runs
               if x.get("busy_before") is not None]
    ctx["other_load"] = (statistics.median(samples), max(samples)) if samples else None
    # The per-run samples say more than load averages, which also count our own runs.
    ctx["busy"] = (statistics.median(samples) > 0.25 if samples else
                   max(loads, default=0.0) > 0.5 * (os.cpu_count() or 1))
    ctx["waited"] = sum(x.get("waited", 0) for r in readers for x in r.runs)

    if args.profile:
        binary = find_pgtlsmon(args.build, args.pgtlsmon)
        if binary:
            log("profiling pgtlsmon --threads 1 and 2 with perf ...")
            ctx["profile"] = profile_section(binary, pcap, bench_dir)
            if args.rotated:
                log("counting instructions with callgrind ...")
                cg = callgrind_section(binary, args.rotated[:6], bench_dir)
                if cg:
                    ctx["profile"] += "\n\n**Instructions** (callgrind):\n\n" + cg
    text = report(readers, exp, pcap, ctx)
    print(text)
    with open(os.path.join(bench_dir, "results.json"), "w") as f:
        json.dump({"context": ctx, "expected": exp, "readers": [
            {"name": r.name, "command": r.argv, "missing": r.missing, "failure": r.failure,
             "answer": r.answer, "runs": r.runs} for r in readers]}, f, indent=1)
    if args.write_docs:
        with open(args.docs, "w") as f:
            f.write(text)
        log(f"wrote {os.path.relpath(args.docs, REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
