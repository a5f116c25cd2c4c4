#!/usr/bin/python3
"""End to end: `pgtlsmon watch --capture pcap` on lo, scraped by a real Prometheus, against
real PostgreSQL 15 traffic, checked against what the servers themselves reported.

Usage: watch_e2e.py --pgtlsmon BIN [--capture pcap|ebpf|auto] [--keep]

Flow: a throwaway CA and two PostgreSQL 15 servers on free loopback ports (pgharness):
  A  ssl=on, ssl_min_protocol_version=TLSv1, ciphers DEFAULT:@SECLEVEL=0
  B  ssl=on, ssl_min_protocol_version=TLSv1.2; later restarted with ssl=off (same port)
`pgtlsmon watch --interface lo --ports A,B --listen 127.0.0.1:<free> --session-log <tmp>`,
and /usr/bin/prometheus (own TSDB, scrape_interval 1s) scraping it; once `up` is 1, real
clients connect one at a time:
  A: psql TLSv1, TLSv1.1, TLSv1.2, TLSv1.3 (default: HelloRetryRequest), TLSv1.3 over ::1
     (when the machine has IPv6 loopback), psql sslmode=disable (plaintext)
  B: psql offering TLSv1..TLSv1.1 -> the server's fatal protocol_version alert (tls_failed);
     after the restart with ssl=off: psql sslmode=require (ssl_refused), sslmode=prefer
     (N, then plaintext)
tcpdump runs alongside only to learn the client ports of sessions that never reached a backend.
After two more scrapes, Prometheus's /api/v1/query answers must EQUAL the expectation built
from each session's pg_stat_ssl row (version, cipher -> IANA name) and the scenario:
  sum by (server, version, outcome) (pgtlsmon_sessions_total)
  sum by (client, version) (pgtlsmon_legacy_sessions_total)
  sum by (client) (pgtlsmon_plaintext_sessions_total)
  sum by (alert) (pgtlsmon_handshake_failures_total)
  sum by (version, cipher) (pgtlsmon_negotiated_ciphers_total)
plus pgtlsmon_build_info{capture}, no capture drops and no parse errors. The session log must
hold one record per session, each agreeing with pg_stat_ssl (check_replay.check_pgstat);
`promtool check metrics` must accept a /metrics fetch; SIGTERM must exit 0.
Last line 'N passed, M failed'; exit 1 on a failure, 77 when the machine cannot run it (not
root, no PostgreSQL 15, no prometheus/promtool).
"""
import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import check_replay  # noqa: E402
import pgharness as ph  # noqa: E402
import watchlib as wl  # noqa: E402

SKIP = 77
SERVER_FATAL_PROTOCOL_VERSION = {"from": "server", "description": "protocol_version"}


def server_label(ip, port):
    return "[%s]:%d" % (ip, port) if ":" in ip else "%s:%d" % (ip, port)


def second_server(h):
    """Another PgServer next to the harness's own (same certificates, its own data dir)."""
    workdir = os.path.join(h.root, "pg2")
    os.makedirs(workdir)
    shutil.chown(workdir, ph.PG_USER, ph.PG_USER)
    return ph.PgServer(workdir, h.certs)


class on_server:
    """Runs the harness's client helpers (and h.capture) against another server."""

    def __init__(self, h, srv):
        self.h, self.srv = h, srv

    def __enter__(self):
        self.saved, self.h.server = self.h.server, self.srv
        return self.srv

    def __exit__(self, *_):
        self.h.server = self.saved


def run_sessions(h, a, b, tmp):
    """The scenario. Returns ({session name: extra expectations}) for metrics not in truth()."""
    extra = {}
    with h.capture(os.path.join(tmp, "a.pcap")):
        h.psql("psql-tls1.0", tls_version="TLSv1", expect_hrr=False)
        h.psql("psql-tls1.1", tls_version="TLSv1.1", expect_hrr=False)
        h.psql("psql-tls1.2", tls_version="TLSv1.2", expect_hrr=False)
        h.psql("psql-tls1.3-hrr", expect_hrr=True)
        if a.ipv6:
            h.psql("psql-tls1.3-ipv6", ipv6=True, sni=True, expect_hrr=True)
        h.psql("psql-sslmode-disable", sslmode="disable")
    with on_server(h, b):
        with h.capture(os.path.join(tmp, "b.pcap")):
            h.psql("psql-tls1.1-vs-min1.2", min_version="TLSv1", max_version="TLSv1.1",
                   expect_outcome="tls_failed", expect_alert=SERVER_FATAL_PROTOCOL_VERSION)
            # legacy_tls_offered_only: counted as legacy under the newest version offered
            extra["psql-tls1.1-vs-min1.2"] = {"legacy_version": "TLSv1.1"}
            b.restart(ssl="off")
            h.psql("psql-require-refused", sslmode="require", expect_outcome="ssl_refused")
            h.psql("psql-prefer-N-plaintext", sslmode="prefer")
    return extra


def expected_metrics(sessions, extra):
    exp = {k: collections.Counter() for k in ("sessions", "legacy", "plaintext", "failures", "ciphers")}
    for s in sessions:
        e = s.expected
        client = s.server_ip  # loopback: the client uses the address it connects to
        version = e.get("tls_version") or "none"
        if e["outcome"] != "tls":
            version = "none"
        srv = server_label(s.server_ip, s.server_port)
        exp["sessions"][(srv, version, e["outcome"])] += 1
        if e["outcome"] == "tls" and version in ph.LEGACY_VERSIONS:
            exp["legacy"][(client, version)] += 1
        if "legacy_version" in extra.get(s.name, {}):
            exp["legacy"][(client, extra[s.name]["legacy_version"])] += 1
        if e["outcome"] == "plaintext":
            exp["plaintext"][(client,)] += 1
        if e["outcome"] == "tls_failed":
            exp["failures"][((e.get("alert") or {}).get("description", "none"),)] += 1
        if e["outcome"] == "tls":
            exp["ciphers"][(version, e["cipher_iana"])] += 1
    return exp


QUERIES = {
    "sessions": ("sum by (server, version, outcome) (pgtlsmon_sessions_total)",
                 ("server", "version", "outcome")),
    "legacy": ("sum by (client, version) (pgtlsmon_legacy_sessions_total)", ("client", "version")),
    "plaintext": ("sum by (client) (pgtlsmon_plaintext_sessions_total)", ("client",)),
    "failures": ("sum by (alert) (pgtlsmon_handshake_failures_total)", ("alert",)),
    "ciphers": ("sum by (version, cipher) (pgtlsmon_negotiated_ciphers_total)", ("version", "cipher")),
}


def fmt_counter(c):
    return ", ".join("%s=%g" % ("/".join(k), v) for k, v in sorted(c.items())) or "(empty)"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--pgtlsmon", required=True)
    ap.add_argument("--capture", default="pcap", choices=("pcap", "ebpf", "auto"))
    ap.add_argument("--keep", action="store_true", help="keep the temp dirs")
    args = ap.parse_args()

    why = ph.missing_requirements()
    for prog in (wl.PROMETHEUS, wl.PROMTOOL):
        if not os.access(prog, os.X_OK):
            why.append("%s missing" % prog)
    if why:
        print("watch_e2e: skipped: %s" % "; ".join(why))
        sys.exit(SKIP)
    if not os.access(args.pgtlsmon, os.X_OK):
        ap.error("--pgtlsmon %s: not an executable" % args.pgtlsmon)

    t = check_replay.Tally()
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="pgtlsmon-watch-e2e-")
    procs = {}
    try:
        with ph.Harness(keep=args.keep) as h:
            try:
                scenario(h, args, t, tmp, procs)
            finally:  # before the harness removes its dir: B lives in it
                for key in ("watch", "prom", "b"):
                    if procs.get(key) is not None:
                        procs[key].close()
    except (ph.HarnessError, wl.WatchError) as e:
        t.ok(False, "%s: %s" % (type(e).__name__, e))
        traceback.print_exc()
    finally:
        if procs.get("watch") is not None and t.failed:
            print("pgtlsmon stderr:\n%s" % procs["watch"].stderr_text())
        if args.keep:
            print("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("(%.1f s)" % (time.time() - t0))
    print("%d passed, %d failed" % (t.passed, t.failed))
    sys.exit(1 if t.failed or t.passed == 0 else 0)


def scenario(h, args, t, tmp, procs):
    a = h.start_server()
    b = procs["b"] = second_server(h)
    b.start(ssl_min_protocol_version="TLSv1.2")
    log_path = os.path.join(tmp, "sessions.jsonl")
    watch = procs["watch"] = wl.WatchProcess(args.pgtlsmon, [a.port, b.port],
                                             capture=args.capture, session_log=log_path)
    ph.log("watch: %s" % " ".join(watch.cmd))
    t.ok(watch.wait_stderr(r"capturing on lo with %s" % (
        args.capture if args.capture != "auto" else "(ebpf|pcap)")),
         "watch names its capture back end: %s" % watch.stderr_text())
    status, body = wl.http_get(watch.url + "/healthz")
    t.ok(status == 200 and body.strip() == "ok", "/healthz: %d %r" % (status, body))

    prom = procs["prom"] = wl.Prometheus([watch.listen])
    prom.wait_up()
    ph.log("prometheus on %s scrapes %s: up" % (prom.url, watch.listen))

    extra = run_sessions(h, a, b, tmp)
    sessions = list(h.sessions)
    n = len(sessions)
    exp = expected_metrics(sessions, extra)

    # pgtlsmon has counted everything; then let Prometheus scrape twice more.
    got = watch.wait_for_metric("pgtlsmon_sessions_total", n, timeout=15)
    t.ok(got == n, "pgtlsmon /metrics counts %s sessions, %d ran" % (got, n))
    settled = time.time()
    t.ok(prom.wait_scrapes_after(settled, n=2), "prometheus scraped twice after the sessions")

    print("Prometheus /api/v1/query results (%d sessions):" % n)
    for key, (expr, labels) in QUERIES.items():
        res = collections.Counter()
        for lab, v in prom.query(expr):
            res[tuple(lab.get(l, "") for l in labels)] += v
        print("  %s\n    = %s" % (expr, fmt_counter(res)))
        t.ok(res == exp[key], "%s:\n      prometheus %s\n      expected   %s" % (
            expr, fmt_counter(res), fmt_counter(exp[key])))
    # The same, summed the way the dashboards do (version, outcome only).
    res = collections.Counter({tuple(l.get(k, "") for k in ("version", "outcome")): v for l, v in
                               prom.query("sum by (version, outcome) (pgtlsmon_sessions_total)")})
    want = collections.Counter()
    for (_srv, version, outcome), v in exp["sessions"].items():
        want[(version, outcome)] += v
    print("  sum by (version, outcome) (pgtlsmon_sessions_total)\n    = %s" % fmt_counter(res))
    t.ok(res == want, "sessions by version, outcome: %s, expected %s" % (
        fmt_counter(res), fmt_counter(want)))
    info = prom.query("pgtlsmon_build_info")
    want_capture = args.capture if args.capture != "auto" else None
    t.ok(len(info) == 1 and info[0][1] == 1 and
         (want_capture is None or info[0][0].get("capture") == want_capture),
         "pgtlsmon_build_info: %s" % info)
    for expr in ("sum(pgtlsmon_capture_drops_total)", "sum(pgtlsmon_parse_errors_total)",
                 "sum(pgtlsmon_flow_evictions_total)", "sum(pgtlsmon_session_log_errors_total)"):
        res = prom.query(expr)
        print("  %s = %s" % (expr, res[0][1] if res else None))
        t.ok(res and res[0][1] == 0, "%s = %s, expected 0" % (expr, res))
    res = prom.query('sum(pgtlsmon_packets_total)')
    t.ok(res and res[0][1] > 0, "pgtlsmon_packets_total = %s" % res)

    body = watch.metrics()
    ok, out = wl.promtool_check_metrics(body)
    t.ok(ok, "promtool check metrics: %s" % out)

    # The deploy kit against these live metrics: every PromQL expression of the dashboard and
    # the rules parses in a real Prometheus scraping this pgtlsmon, and the key panels have data.
    check = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy",
                         "tests", "check_promql.py")
    res = subprocess.run([sys.executable, check, "--target", watch.listen],
                         capture_output=True, text=True, timeout=180)
    tail = (res.stdout.strip().splitlines() or [""])[-1]
    print("  deploy/tests/check_promql.py --target %s: %s" % (watch.listen, tail))
    t.ok(res.returncode == 0, "dashboard and rule PromQL on live metrics: rc %d\n%s%s" % (
        res.returncode, res.stdout[-2000:], res.stderr[-1000:]))

    # Stop: exit 0, then the log (flushed at exit) against pg_stat_ssl.
    rc = watch.stop()
    t.ok(rc == 0, "SIGTERM: pgtlsmon exited %s: %s" % (rc, watch.stderr_text()))
    records = wl.load_jsonl(log_path)
    t.ok(len(records) == n, "session log: %d records, %d sessions" % (len(records), n))
    truth = [s.truth() for s in sessions]
    t.add(check_replay.check_pgstat(truth, records, "session-log"))
    prom.stop()


if __name__ == "__main__":
    main()
