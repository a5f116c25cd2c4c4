#!/usr/bin/python3
"""Check `pgtlsmon replay --format jsonl` on real captures against two independent truths.

Usage:
  check_replay.py --pgtlsmon BIN CAPTURE...          # committed captures (X.pcap next to
                                                     # X.pgstat.jsonl and X.truth.jsonl)
  check_replay.py --pgtlsmon BIN --regenerate [DIR]  # make fresh captures (root, PG15) into
                                                     # DIR (default: a temp dir) and check them
  check_replay.py --actual FILE CAPTURE              # check a given records file instead
  check_replay.py --tshark-as-actual CAPTURE...      # check the truths against each other

For each capture: runs `BIN replay --format jsonl --ports P CAPTURE` (P = the server ports of
the .pgstat.jsonl), then (1) shared/tools/compare-sessions X.truth.jsonl ACTUAL (tshark's view;
every field must agree) and (2) every .pgstat.jsonl entry against the record with the same
client address and port: outcome, tls.version = pg_stat_ssl's version, the negotiated suite
(tls.cipher_suite, tls.cipher) = pg_stat_ssl's OpenSSL cipher name, and the scenario's
expectations (SSLRequest answer, direct TLS, HelloRetryRequest, fatal alert).
The last line is 'N passed, M failed'; exit 0 only when nothing failed, 77 when --regenerate
cannot run here (not root, no PostgreSQL 15).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pgharness as ph  # noqa: E402

SOURCE_DIR = os.path.dirname(os.path.dirname(HERE))
DEFAULT_SHARED = os.environ.get("PGTLS_SHARED_DIR", os.path.join(SOURCE_DIR, "..", "shared"))
SKIP = 77


class Tally:
    def __init__(self):
        self.passed = self.failed = 0

    def ok(self, cond, msg):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL %s" % msg)
        return cond

    def add(self, other):
        self.passed += other.passed
        self.failed += other.failed


def load_jsonl(path):
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except ValueError as e:
                    raise SystemExit("%s:%d: not JSON: %s" % (path, n, e))
    return out


def sidecars(capture):
    base = re.sub(r"\.(pcap|pcapng)(\.gz)?$", "", capture)
    return base + ".pgstat.jsonl", base + ".truth.jsonl"


def get(rec, dotted):
    cur = rec
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def lower(v):
    return v.lower() if isinstance(v, str) else v


def openssl_name(code_hex):
    """OpenSSL cipher name of a suite code ('0xc030')."""
    if not code_hex:
        return None
    code = int(code_hex, 16)
    for name, (_iana, c) in ph.cipher_table().items():
        if c == code:
            return name
    return None


def check_pgstat(entries, records, label, need_cipher_name=True):
    """Every pg_stat_ssl truth entry against the actual record with its client port."""
    t = Tally()
    by_key = {}
    for r in records:
        try:
            key = (str(r["client"]["ip"]), int(r["client"]["port"]),
                   str(r["server"]["ip"]), int(r["server"]["port"]))
        except (KeyError, TypeError, ValueError):
            continue
        by_key.setdefault(key, []).append(r)
    for e in entries:
        key = (e["client"]["ip"], e["client"]["port"], e["server"]["ip"], e["server"]["port"])
        name = "%s %s [%s]:%d" % (label, e["name"], key[0], key[1])
        found = by_key.get(key, [])
        if not t.ok(len(found) == 1, "%s: %d records for this connection, expected 1" % (name, len(found))):
            continue
        rec, exp = found[0], e["expected"]
        t.ok(rec.get("outcome") == exp["outcome"], "%s: outcome %r, expected %r" % (
            name, rec.get("outcome"), exp["outcome"]))
        tls = rec.get("tls")
        version = tls.get("version") if isinstance(tls, dict) else None
        t.ok(version == exp["tls_version"], "%s: tls.version %r, pg_stat_ssl says %r" % (
            name, version, exp["tls_version"]))
        suite = tls.get("cipher_suite") if isinstance(tls, dict) else None
        t.ok(lower(suite) == lower(exp["cipher_suite"]),
             "%s: tls.cipher_suite %r, expected %r (pg_stat_ssl cipher %r)" % (
                 name, suite, exp["cipher_suite"], exp["cipher"]))
        if exp["cipher"]:
            t.ok(openssl_name(suite) == exp["cipher"],
                 "%s: negotiated suite %r is OpenSSL's %r, pg_stat_ssl says %r" % (
                     name, suite, openssl_name(suite), exp["cipher"]))
        if isinstance(tls, dict) and (need_cipher_name or "cipher" in tls):
            t.ok(tls.get("cipher") == exp["cipher_iana"], "%s: tls.cipher %r, expected %r" % (
                name, tls.get("cipher"), exp["cipher_iana"]))
        t.ok(get(rec, "pg.ssl_response") == exp["ssl_response"], "%s: pg.ssl_response %r, expected %r" % (
            name, get(rec, "pg.ssl_response"), exp["ssl_response"]))
        t.ok(get(rec, "pg.direct_tls") == exp["direct_tls"], "%s: pg.direct_tls %r, expected %r" % (
            name, get(rec, "pg.direct_tls"), exp["direct_tls"]))
        if exp.get("hello_retry_request") is not None:
            hrr = get(rec, "server_hello.hello_retry_request")
            t.ok(hrr == exp["hello_retry_request"], "%s: server_hello.hello_retry_request %r, expected %r" % (
                name, hrr, exp["hello_retry_request"]))
        if exp.get("alert"):
            want = exp["alert"]
            alerts = rec.get("alerts") or []
            t.ok(any(a.get("level") == "fatal" and a.get("from") == want["from"] and
                     a.get("description") == want["description"] for a in alerts),
                 "%s: alerts %s lack a fatal %s from the %s" % (
                     name, json.dumps(alerts), want["description"], want["from"]))
    return t


def compare_sessions(shared, truth, actual, label):
    t = Tally()
    res = subprocess.run([sys.executable, os.path.join(shared, "tools", "compare-sessions"), truth, actual],
                         capture_output=True, text=True, timeout=120)
    lines = res.stdout.strip().splitlines()
    m = re.match(r"(\d+) passed, (\d+) failed", lines[-1] if lines else "")
    if not m:
        t.ok(False, "%s: compare-sessions said nothing useful: %s %s" % (label, res.stdout, res.stderr))
        return t
    for line in lines[:-1]:
        print("FAIL %s: compare-sessions: %s" % (label, line))
    t.passed, t.failed = int(m.group(1)), int(m.group(2))
    if t.failed == 0 and res.returncode != 0:
        t.ok(False, "%s: compare-sessions exited %d" % (label, res.returncode))
    return t


def run_pgtlsmon(binary, capture, ports, out, timeout=60):
    cmd = [binary, "replay", "--format", "jsonl", "--ports", ",".join(map(str, ports)), capture]
    with open(out, "w") as f:
        res = subprocess.run(cmd, stdout=f, stderr=subprocess.PIPE, text=True, timeout=timeout)
    return res.returncode, res.stderr, cmd


def check_capture(capture, *, binary=None, actual=None, tshark_as_actual=False,
                  shared_dir=DEFAULT_SHARED, pgstat=None, truth=None, ports=None):
    """All checks for one capture; returns a Tally."""
    d_pgstat, d_truth = sidecars(capture)
    pgstat, truth = pgstat or d_pgstat, truth or d_truth
    label = os.path.basename(capture)
    t = Tally()
    entries = load_jsonl(pgstat)
    ports = ports or sorted({e["server"]["port"] for e in entries})
    tmp = None
    try:
        if tshark_as_actual:
            actual = truth
        elif actual is None:
            fd, tmp = tempfile.mkstemp(prefix="pgtlsmon-", suffix=".jsonl")
            os.close(fd)
            rc, err, cmd = run_pgtlsmon(binary, capture, ports, tmp)
            t.ok(rc == 0, "%s: %s exited %d: %s" % (label, " ".join(cmd), rc, err.strip()))
            actual = tmp
        if not tshark_as_actual:  # truth against itself would only inflate the count
            t.add(compare_sessions(shared_dir, truth, actual, label))
        try:
            records = load_jsonl(actual)
        except SystemExit as e:
            t.ok(False, str(e))
            records = []
        t.add(check_pgstat(entries, records, label, need_cipher_name=not tshark_as_actual))
    finally:
        if tmp:
            os.unlink(tmp)
    print("%s: %d passed, %d failed (%d sessions, %d with pg_stat_ssl)" % (
        label, t.passed, t.failed, len(entries), sum(1 for e in entries if e["reached_backend"])))
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("captures", nargs="*")
    ap.add_argument("--pgtlsmon", help="the pgtlsmon binary")
    ap.add_argument("--actual", help="records file to check instead of running pgtlsmon (one capture)")
    ap.add_argument("--tshark-as-actual", action="store_true",
                    help="use X.truth.jsonl as the actual records: checks pg_stat_ssl against tshark")
    ap.add_argument("--pgstat", help="pg_stat_ssl truth (default X.pgstat.jsonl; one capture)")
    ap.add_argument("--truth", help="tshark truth (default X.truth.jsonl; one capture)")
    ap.add_argument("--ports", help="ports for pgtlsmon (default: the server ports of the pgstat file)")
    ap.add_argument("--regenerate", nargs="?", const="", metavar="OUTDIR",
                    help="make fresh captures with make_captures.py into OUTDIR (default: a temp "
                         "dir, removed afterwards) and check them")
    ap.add_argument("--shared-dir", default=DEFAULT_SHARED)
    args = ap.parse_args()

    if args.regenerate is None and not args.captures:
        ap.error("give captures or --regenerate")
    if not (args.pgtlsmon or args.actual or args.tshark_as_actual):
        ap.error("give --pgtlsmon BIN (or --actual FILE / --tshark-as-actual)")
    single = [x for x in ("actual", "pgstat", "truth") if getattr(args, x)]
    if single and (len(args.captures) != 1 or args.regenerate is not None):
        ap.error("--%s needs exactly one capture" % single[0])
    for opt in ("actual", "pgstat", "truth"):
        if getattr(args, opt) and not os.path.isfile(getattr(args, opt)):
            ap.error("--%s %s: no such file" % (opt, getattr(args, opt)))
    for cap in args.captures:
        if not os.path.isfile(cap):
            ap.error("%s: no such capture" % cap)
    if args.pgtlsmon and not os.access(args.pgtlsmon, os.X_OK):
        ap.error("--pgtlsmon %s: not an executable" % args.pgtlsmon)
    for tool in ("compare-sessions", "tshark-sessions"):
        if not os.path.exists(os.path.join(args.shared_dir, "tools", tool)):
            ap.error("--shared-dir %s: no tools/%s" % (args.shared_dir, tool))

    t0 = time.time()
    captures, tmpdir = list(args.captures), None
    try:
        if args.regenerate is not None:
            why = ph.missing_requirements()
            if shutil.which("tshark") is None:
                why.append("tshark not found")
            if why:
                print("check_replay: skipped: %s" % "; ".join(why))
                sys.exit(SKIP)
            import make_captures
            outdir = args.regenerate or None
            if not outdir:
                outdir = tmpdir = tempfile.mkdtemp(prefix="pgtlsmon-e2e-")
            try:
                captures = make_captures.make(outdir, shared=args.shared_dir)
            except (ph.HarnessError, subprocess.SubprocessError) as e:
                print("FAIL making captures: %s" % e)
                print("0 passed, 1 failed")
                sys.exit(1)
        ports = [int(p) for p in args.ports.split(",")] if args.ports else None
        total = Tally()
        for cap in captures:
            total.add(check_capture(cap, binary=args.pgtlsmon, actual=args.actual,
                                    tshark_as_actual=args.tshark_as_actual,
                                    shared_dir=args.shared_dir, pgstat=args.pgstat,
                                    truth=args.truth, ports=ports))
    finally:
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
    print("(%d captures, %.1f s)" % (len(captures), time.time() - t0))
    print("%d passed, %d failed" % (total.passed, total.failed))
    sys.exit(1 if total.failed or total.passed == 0 else 0)


if __name__ == "__main__":
    main()
