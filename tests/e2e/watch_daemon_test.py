#!/usr/bin/python3
"""Fast checks of the `pgtlsmon watch` daemon's behaviour, one CTest each (label e2e).

Usage: watch_daemon_test.py --pgtlsmon BIN CASE
  client_cap     --max-clients 2: plaintext sessions from 127.0.0.1, .2, .3 -> the third is
                 counted under client="other" and pgtlsmon_label_overflow_total{label="client"}
  bind_failure   --listen on a port another socket holds -> exit 1, one message naming the
                 address and the cause, no crash; a malformed --listen -> exit 2 naming the flag
  sighup         the session log renamed away, SIGHUP: old sessions stay in the renamed file,
                 new ones land in a new file at the configured path
  sighup_failed_reopen  SIGHUP while the log's directory is gone: reported, records go on into
                 the file open before, the reopen is retried every second until it works;
                 pgtlsmon_session_log_errors_total stays 0
  sigterm_flush  a session made just before SIGTERM is in the log; exit 0
  healthz        /healthz answers 200 "ok" (GET and HEAD), unknown paths 404, /metrics 200

No PostgreSQL needed: a tiny listener on 127.0.0.1 (watchlib.FakePgServer) answers like a server
with ssl=off, and raw clients bind 127.0.0.x source addresses (Linux routes 127/8 on lo), which
libpq cannot. Needs root (libpcap on lo); exit 77 otherwise. Last line 'N passed, M failed'.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import check_replay  # noqa: E402
import watchlib as wl  # noqa: E402

SKIP = 77


def case_client_cap(binary, t, tmp):
    with wl.FakePgServer() as srv, \
            wl.WatchProcess(binary, [srv.port], extra=["--max-clients", "2"]) as w:
        ports = {}
        for src in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
            ports[src], _ = wl.raw_plaintext_session(srv.port, src)
        # also one refused-then-plaintext session from the third client: still "other"
        wl.raw_plaintext_session(srv.port, "127.0.0.3", ssl_request_first=True)
        got = w.wait_for_metric("pgtlsmon_sessions_total", 4)
        t.ok(got == 4, "sessions counted: %s, expected 4" % got)
        s = w.samples()
        plain = {l["client"]: v for n, l, v in s if n == "pgtlsmon_plaintext_sessions_total"}
        t.ok(plain == {"127.0.0.1": 1, "127.0.0.2": 1, "other": 2},
             "pgtlsmon_plaintext_sessions_total by client: %s" % plain)
        over = wl.metric_sum(s, "pgtlsmon_label_overflow_total", label="client")
        t.ok(over == 2, "pgtlsmon_label_overflow_total{label=\"client\"} = %s, expected 2" % over)
        srv_label = "127.0.0.1:%d" % srv.port
        t.ok(wl.metric_sum(s, "pgtlsmon_sessions_total", server=srv_label, outcome="plaintext",
                           version="none") == 4, "sessions_total{server=%s,plaintext,none}" % srv_label)
        t.ok(w.stop() == 0, "exit code after SIGTERM: %s" % w.returncode)


def case_bind_failure(binary, t, tmp):
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    addr = "127.0.0.1:%d" % holder.getsockname()[1]
    try:
        res = subprocess.run([binary, "watch", "--interface", "lo", "--capture", "pcap",
                              "--ports", "5432", "--listen", addr],
                             capture_output=True, text=True, timeout=20)
        t.ok(res.returncode == 1, "listen on a taken port: exit %d, expected 1 (stderr %r)" % (
            res.returncode, res.stderr))
        t.ok(addr in res.stderr and "in use" in res.stderr.lower(),
             "the message names %s and the cause: %r" % (addr, res.stderr))
        t.ok("terminate" not in res.stderr and "Aborted" not in res.stderr,
             "no crash: %r" % res.stderr)
    finally:
        holder.close()
    res = subprocess.run([binary, "watch", "--interface", "lo", "--capture", "pcap",
                          "--listen", "localhost"], capture_output=True, text=True, timeout=20)
    t.ok(res.returncode == 2 and "--listen" in res.stderr,
         "malformed --listen: exit %d, expected 2 naming --listen (stderr %r)" % (
             res.returncode, res.stderr))
    # The daemon still starts on a free port afterwards (SO_REUSEADDR, nothing left behind).
    with wl.WatchProcess(binary, [5432], listen=addr) as w:
        t.ok(wl.http_get(w.url + "/healthz")[0] == 200, "the freed address can be used")


def case_sighup(binary, t, tmp):
    log = os.path.join(tmp, "sessions.jsonl")
    rotated = log + ".1"
    with wl.FakePgServer() as srv, wl.WatchProcess(binary, [srv.port], session_log=log) as w:
        p1, _ = wl.raw_plaintext_session(srv.port, "127.0.0.1")
        recs = wl.wait_records(log, 1)
        t.ok([r["client"]["port"] for r in recs] == [p1], "first session in the log: %s" % recs)
        os.rename(log, rotated)
        w.proc.send_signal(signal.SIGHUP)
        t.ok(w.wait_stderr(r"session log reopened"), "SIGHUP reopens: %s" % w.stderr_text())
        t.ok(os.path.exists(log), "a new %s exists right after SIGHUP" % log)
        p2, _ = wl.raw_plaintext_session(srv.port, "127.0.0.2")
        recs = wl.wait_records(log, 1)
        t.ok([r["client"]["port"] for r in recs] == [p2],
             "second session in the new file: %s" % [r["client"] for r in recs])
        old = wl.load_jsonl(rotated)
        t.ok([r["client"]["port"] for r in old] == [p1], "the rotated file keeps only the first: %s" % old)
        t.ok(w.alive(), "still running after SIGHUP")
        t.ok(w.stop() == 0, "exit code after SIGTERM: %s" % w.returncode)


def case_sighup_failed_reopen(binary, t, tmp):
    logdir = os.path.join(tmp, "logs")
    os.makedirs(logdir)
    log = os.path.join(logdir, "sessions.jsonl")
    with wl.FakePgServer() as srv, wl.WatchProcess(binary, [srv.port], session_log=log) as w:
        p1, _ = wl.raw_plaintext_session(srv.port, "127.0.0.1")
        t.ok(len(wl.wait_records(log, 1)) == 1, "first session in the log")
        os.rename(logdir, logdir + ".old")  # the configured path cannot be reopened now
        w.proc.send_signal(signal.SIGHUP)
        t.ok(w.wait_stderr(r"cannot open session log .*retrying"),
             "a failed reopen is reported: %s" % w.stderr_text())
        p2, _ = wl.raw_plaintext_session(srv.port, "127.0.0.2")
        old = wl.wait_records(os.path.join(logdir + ".old", "sessions.jsonl"), 2)
        t.ok([r["client"]["port"] for r in old] == [p1, p2],
             "meanwhile records go on into the file open before, not nowhere: %s" % old)
        os.makedirs(logdir)  # the path works again: reopened without another SIGHUP
        t.ok(w.wait_stderr(r"session log reopened"), "retried: %s" % w.stderr_text())
        p3, _ = wl.raw_plaintext_session(srv.port, "127.0.0.3")
        recs = wl.wait_records(log, 1)
        t.ok([r["client"]["port"] for r in recs] == [p3], "then into the new file: %s" % recs)
        errors = wl.metric_sum(w.samples(), "pgtlsmon_session_log_errors_total")
        t.ok(errors == 0, "pgtlsmon_session_log_errors_total = %s, expected 0" % errors)
        t.ok(w.stop() == 0, "exit code after SIGTERM: %s" % w.returncode)


def case_sigterm_flush(binary, t, tmp):
    log = os.path.join(tmp, "sessions.jsonl")
    with wl.FakePgServer() as srv:
        for i in range(3):  # the race is narrow: try a few times
            if os.path.exists(log):
                os.unlink(log)
            w = wl.WatchProcess(binary, [srv.port], session_log=log)
            p, _ = wl.raw_plaintext_session(srv.port, "127.0.0.1", ssl_request_first=True)
            rc = w.stop(signal.SIGTERM)  # at once: the record may still be in the capture buffer
            t.ok(rc == 0, "run %d: exit %s after SIGTERM: %s" % (i, rc, w.stderr_text()))
            recs = wl.load_jsonl(log)
            mine = [r for r in recs if r["client"]["port"] == p]
            t.ok(len(mine) == 1 and mine[0]["outcome"] == "plaintext" and
                 mine[0]["pg"]["ssl_response"] == "N",
                 "run %d: the session made just before SIGTERM is in the log: %s" % (i, recs))
            t.ok(re.search(r"stopped after \d+ packets", w.stderr_text()),
                 "run %d: says it stopped: %s" % (i, w.stderr_text()))
        w = wl.WatchProcess(binary, [srv.port])
        t.ok(w.stop(signal.SIGINT) == 0, "SIGINT: exit %s" % w.returncode)


def case_healthz(binary, t, tmp):
    with wl.WatchProcess(binary, [5432]) as w:
        status, body = wl.http_get(w.url + "/healthz")
        t.ok(status == 200 and body == "ok\n", "GET /healthz: %d %r" % (status, body))
        import urllib.request
        req = urllib.request.Request(w.url + "/healthz", method="HEAD")
        with urllib.request.urlopen(req, timeout=5) as r:
            t.ok(r.status == 200 and r.read() == b"", "HEAD /healthz: %d" % r.status)
        t.ok(wl.http_get(w.url + "/nope")[0] == 404, "unknown path: 404")
        status, body = wl.http_get(w.url + "/metrics")
        t.ok(status == 200 and "pgtlsmon_build_info{" in body, "GET /metrics: %d" % status)
        ok, out = wl.promtool_check_metrics(body) if os.access(wl.PROMTOOL, os.X_OK) else (True, "")
        t.ok(ok, "promtool check metrics: %s" % out)
        t.ok(re.search(r"serving /metrics and /healthz on %s\b" % re.escape(w.listen), w.stderr_text()),
             "logs the address it serves on: %s" % w.stderr_text())
        t.ok(w.stop() == 0, "exit code after SIGTERM: %s" % w.returncode)


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--pgtlsmon", required=True)
    ap.add_argument("case", choices=sorted(CASES))
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("watch_daemon_test: skipped: not root (libpcap on lo)")
        sys.exit(SKIP)
    t = check_replay.Tally()
    tmp = tempfile.mkdtemp(prefix="pgtlsmon-watch-")
    t0 = time.time()
    try:
        CASES[args.case](args.pgtlsmon, t, tmp)
    except (wl.WatchError, OSError, subprocess.SubprocessError) as e:
        t.ok(False, "%s: %s" % (type(e).__name__, e))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%s (%.1f s)" % (args.case, time.time() - t0))
    print("%d passed, %d failed" % (t.passed, t.failed))
    sys.exit(1 if t.failed or t.passed == 0 else 0)


if __name__ == "__main__":
    main()
