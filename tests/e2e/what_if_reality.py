#!/usr/bin/python3
"""--what-if against reality: real PostgreSQL 15 servers are the oracle.

1. A permissive PostgreSQL 15 (ssl_min_protocol_version TLSv1, ssl_ciphers
   'DEFAULT:@SECLEVEL=0') is visited by a varied set of real clients (psql/libpq at each
   version, openssl s_client -starttls postgres, gnutls-cli --starttls-proto=postgres, pgjdbc on
   OpenJDK, Go crypto/tls via lib/pq, asyncpg) while tcpdump captures.
2. `pgtlsmon replay --what-if NAME=SETTINGS ...` predicts, from that capture, each connection
   under every policy below.
3. The same server is restarted under each policy and the same clients run again, captured;
   what the strict server did (its log: `connection authorized ... SSL enabled (protocol=,
   cipher=)` or `could not accept SSL connection: <reason>`, by client port) must equal each
   prediction: outcome, version, suite, reason. Connections are paired by order, checked by
   their ClientHello's JA4.

Prints, per policy, predictions compared and how many agreed; exits 1 on any disagreement,
77 when it cannot run (not root, PostgreSQL 15 missing). Clients whose stack is not installed
are left out (and said so), but at least two non-libpq stacks are required.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgharness as ph  # noqa: E402
import watchlib  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
JDBC_JAR = "/usr/share/java/postgresql.jar"
GOPATH = "/usr/share/gocode"

# PostgreSQL 15's defaults for what a policy does not set (DEFAULT_SETTINGS of pgharness is
# permissive, so every strict phase states them).
PG_DEFAULTS = {"ssl_min_protocol_version": "TLSv1.2", "ssl_max_protocol_version": "",
               "ssl_ciphers": "HIGH:MEDIUM:+3DES:!aNULL", "ssl_prefer_server_ciphers": "on",
               "ssl_ecdh_curve": "prime256v1"}

POLICIES = [
    ("min12", {"ssl_min_protocol_version": "TLSv1.2"}),
    ("min13", {"ssl_min_protocol_version": "TLSv1.3"}),
    ("gcm", {"ssl_min_protocol_version": "TLSv1.2", "ssl_ciphers": "ECDHE+AESGCM"}),
    ("nosha1", {"ssl_ciphers": "HIGH:MEDIUM:+3DES:!aNULL:!SHA1",
                "ssl_prefer_server_ciphers": "off"}),
    ("p384", {"ssl_ecdh_curve": "secp384r1"}),
    ("max12", {"ssl_max_protocol_version": "TLSv1.2"}),
    ("min10", {"ssl_min_protocol_version": "TLSv1"}),
    ("dhe", {"ssl_ciphers": "DHE+AESGCM:AES128-SHA", "ssl_prefer_server_ciphers": "off",
             "ssl_min_protocol_version": "TLSv1"}),
]

# The server's log line for each connection, by client port (log_line_prefix carries %r).
LOG_OK = re.compile(r"\((\d+)\) LOG:\s+connection authorized: .*SSL enabled \(protocol=(\S+), "
                    r"cipher=([^,]+),")
LOG_FAIL = re.compile(r"\((\d+)\) LOG:\s+could not accept SSL connection: (.*)")
# OpenSSL's first queued error as PostgreSQL logs it -> session-record.md's reasons.
REASONS = [("unsupported protocol", "protocol_version"), ("wrong version number", "protocol_version"),
           ("version too low", "protocol_version"), ("no shared cipher", "no_shared_cipher"),
           ("no suitable key share", "no_shared_group"),
           ("no suitable signature algorithm", "no_signature_algorithm"),
           ("no shared signature algorithms", "no_signature_algorithm")]


def log(msg):
    print("what_if_reality: %s" % msg, file=sys.stderr, flush=True)


def settings_text(policy):
    return "; ".join("%s = '%s'" % (k, v) for k, v in policy.items())


def full_settings(policy):
    s = dict(PG_DEFAULTS)
    s.update(policy)
    return s


class Clients:
    """Every client run, the same way in every phase. Each entry makes a fixed number of
    connections, one after the other, so phases pair by order."""

    def __init__(self, h, work):
        self.h = h
        self.work = work
        self.stacks = ["libpq", "s_client", "gnutls"]
        self.go_bin = None
        self.java = shutil.which("java") is not None and os.path.exists(JDBC_JAR)
        if self.java:
            self.stacks.append("pgjdbc")
        if shutil.which("go") and os.path.isdir(os.path.join(GOPATH, "src/github.com/lib/pq")):
            self.go_bin = os.path.join(work, "whatif_libpq")
            env = dict(os.environ, GOPATH=GOPATH, GO111MODULE="off", GOFLAGS="",
                       GOCACHE=os.path.join(work, "gocache"), HOME=work, CGO_ENABLED="0")
            res = subprocess.run(["go", "build", "-o", self.go_bin,
                                  os.path.join(HERE, "what_if", "whatif_libpq.go")],
                                 env=env, capture_output=True, timeout=300)
            if res.returncode != 0:
                log("go build failed: %s" % res.stderr.decode(errors="replace")[-500:])
                self.go_bin = None
            else:
                self.stacks.append("go")
        try:
            import asyncpg  # noqa: F401
            self.asyncpg = True
            self.stacks.append("asyncpg")
        except ImportError:
            self.asyncpg = False
        self.gnutls = shutil.which("gnutls-cli") is not None
        if not self.gnutls:
            self.stacks.remove("gnutls")

    def run_all(self):
        """Runs every client against the current server; returns connections attempted."""
        h, srv = self.h, self.h.server
        port, host = srv.port, srv.host4
        n = 0
        env = h._env()
        legacy = h._env(legacy=True)
        base = ["host=%s" % host, "port=%d" % port, "user=postgres", "dbname=postgres",
                "sslmode=require", "gssencmode=disable", "connect_timeout=10"]
        libpq = [("psql-default", [], env), ("psql-max12", ["ssl_max_protocol_version=TLSv1.2"], env),
                 ("psql-tls13", ["ssl_min_protocol_version=TLSv1.3"], env),
                 ("psql-tls11", ["ssl_min_protocol_version=TLSv1.1",
                                 "ssl_max_protocol_version=TLSv1.1"], legacy),
                 ("psql-tls10", ["ssl_min_protocol_version=TLSv1",
                                 "ssl_max_protocol_version=TLSv1"], legacy),
                 ("psql-min10-legacy", ["ssl_min_protocol_version=TLSv1"], legacy)]
        for name, extra, e in libpq:
            conn = " ".join(base + ["application_name=whatif-%s" % name] + extra)
            ph.run([os.path.join(ph.PG_BIN, "psql"), "-XAtc", "select 1", conn], check=False,
                   timeout=30, env=e)
            n += 1
        payload = ph.pg_startup_message(application_name="whatif-s_client") + ph.PG_TERMINATE
        s_clients = [
            ["-tls1_2", "-cipher", "AES128-SHA:@SECLEVEL=0"],
            ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA"],
            ["-tls1_2", "-cipher", "DHE-RSA-AES256-GCM-SHA384:AES256-SHA"],
            ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256",
             "-groups", "X25519"],
            ["-tls1_2", "-cipher", "ECDHE-RSA-AES256-SHA384:AES256-SHA256"],
            ["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"],
            ["-groups", "X25519"],
            ["-groups", "X25519:prime256v1"],
            ["-groups", "secp384r1:prime256v1"],
            ["-cipher", "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256"],
            ["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"],
            ["-tls1_1", "-cipher", "ECDHE-RSA-AES256-SHA:@SECLEVEL=0"],
            ["-no_tls1_3", "-cipher", "ALL:@SECLEVEL=0"],
            ["-tls1_2", "-sigalgs", "RSA+SHA1:ECDSA+SHA1", "-cipher", "DEFAULT:@SECLEVEL=0"],
        ]
        for args in s_clients:
            ph.run(["openssl", "s_client", "-starttls", "postgres", "-connect",
                    "%s:%d" % (host, port), "-quiet"] + args, check=False, timeout=30,
                   input=payload, env=env)
            n += 1
        if self.gnutls:
            for prio in ["NORMAL", "NORMAL:-VERS-TLS1.3", "NORMAL:-VERS-ALL:+VERS-TLS1.2:-AES-256-GCM",
                         "NORMAL:-GROUP-ALL:+GROUP-X25519",
                         "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+RSA",
                         "PFS:-VERS-TLS1.3"]:
                ph.run(["gnutls-cli", "--starttls-proto=postgres", "--insecure", "--priority",
                        prio, "-p", str(port), host], check=False, timeout=30, input=payload,
                       env=env)
                n += 1
        if self.java:
            url = "jdbc:postgresql://%s:%d/postgres" % (host, port)
            src = os.path.join(HERE, "what_if", "WhatIfJdbc.java")
            for props in ([], ["-Djdk.tls.client.protocols=TLSv1.2"]):
                ph.run(["java", "-Xshare:auto", "-XX:TieredStopAtLevel=1"] + props +
                       ["-cp", JDBC_JAR, src, url, "2"], check=False, timeout=120, env=env)
                n += 2
        if self.go_bin:
            ph.run([self.go_bin, "host=%s port=%d user=postgres dbname=postgres sslmode=require "
                    "connect_timeout=10" % (host, port), "2"], check=False, timeout=60, env=env)
            n += 2
        if self.asyncpg:
            cfgs = [{}, {"max": "TLSv1_2"}, {"max": "TLSv1_2", "ciphers": "AES256-SHA:ECDHE-RSA-AES256-SHA"}]
            ph.run([sys.executable, os.path.join(HERE, "what_if", "whatif_asyncpg.py"), host,
                    str(port), json.dumps(cfgs)], check=False, timeout=60, env=env)
            n += len(cfgs)
        return n


def metric_counts(samples, predicted, names):
    """Per policy: (sessions counted by outcome, failures counted) against the replay's."""
    problems = []
    for name in names:
        for outcome in ("tls", "tls_failed"):
            want = sum(1 for r in predicted if (r["what_if_policies"][name] or {}).get("outcome")
                       == outcome)
            got = watchlib.metric_sum(samples, "pgtlsmon_what_if_sessions_total", policy=name,
                                      outcome=outcome)
            if got != want:
                problems.append("%s %s: %s counted, %d predicted" % (name, outcome, got, want))
        want = sum(1 for r in predicted
                   if (r["what_if_policies"][name] or {}).get("outcome") == "tls_failed")
        got = watchlib.metric_sum(samples, "pgtlsmon_what_if_failures_total", policy=name)
        if got != want:
            problems.append("%s failures: %s counted, %d predicted" % (name, got, want))
    return problems


def replay(pgtlsmon, pcap, port, extra=()):
    res = subprocess.run([pgtlsmon, "replay", "--format", "jsonl", "--ports", str(port), pcap] +
                         list(extra), capture_output=True, timeout=300)
    if res.returncode != 0:
        raise ph.HarnessError("pgtlsmon replay %s failed: %s" % (pcap, res.stderr.decode()))
    for line in res.stderr.decode().splitlines():
        if "--what-if" in line:
            log(line)
    return [json.loads(l) for l in res.stdout.decode().splitlines() if l.strip()]


def server_truth(log_text):
    """{client port: (outcome, version, suite, reason, raw text)} from the server's log."""
    table = ph.cipher_table()
    out = {}
    for line in log_text.splitlines():
        m = LOG_OK.search(line)
        if m:
            code = table.get(m.group(3), (None, None))[1]
            out[int(m.group(1))] = ("tls", m.group(2), "0x%04x" % code if code is not None else
                                    m.group(3), None, line)
            continue
        m = LOG_FAIL.search(line)
        if m:
            text = m.group(2).strip()
            reason = next((r for k, r in REASONS if k in text), None)
            out.setdefault(int(m.group(1)), ("tls_failed", None, None, reason, text))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pgtlsmon", required=True)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if ph.missing_requirements():
        print("skipped: %s" % "; ".join(ph.missing_requirements()))
        return 77
    work = tempfile.mkdtemp(prefix="pgtls-whatif-")
    os.chmod(work, 0o755)
    failures = []
    try:
        with ph.Harness(keep=args.keep) as h:
            prefix = {"log_line_prefix": "%m [%p] %r "}
            srv = h.start_server(**prefix)
            clients = Clients(h, work)
            log("client stacks: %s" % ", ".join(clients.stacks))
            if len([s for s in clients.stacks if s not in ("libpq", "s_client", "gnutls")]) < 2:
                failures.append("fewer than two more client stacks (pgjdbc, Go, asyncpg) installed")

            what_if = []
            for name, pol in POLICIES:
                what_if += ["--what-if", "%s=%s" % (name, settings_text(full_settings(pol)))]

            def phase(name, settings, watch=None):
                if settings is not None:
                    srv.restart(**dict(prefix, **settings))
                log_start = len(srv.log_text())
                pcap = os.path.join(work, "%s.pcap" % name)
                with ph.Tcpdump(pcap, srv.port, pidfile=os.path.join(work, "tcpdump.pid"),
                                buffer_kib=65536):
                    n = clients.run_all()
                return pcap, n, srv.log_text()[log_start:]

            # The permissive phase also runs `pgtlsmon watch --what-if` live: its
            # pgtlsmon_what_if_* counters must equal the replay's predictions.
            with watchlib.WatchProcess(args.pgtlsmon, [srv.port], extra=what_if) as watch:
                base_pcap, base_n, _ = phase("permissive", None)
                metrics_file = os.path.join(work, "replay.prom")
                predicted = [r for r in replay(args.pgtlsmon, base_pcap, srv.port,
                                               what_if + ["--metrics-file", metrics_file])
                             if r["client_hello"]]
                watch.wait_for_metric("pgtlsmon_what_if_sessions_total", len(predicted),
                                      timeout=15, policy=POLICIES[0][0])
                live = watch.samples()
            names = [n for n, _ in POLICIES]
            for problem in metric_counts(live, predicted, names):
                failures.append("watch: " + problem)
            with open(metrics_file) as f:
                for problem in metric_counts(watchlib.parse_metrics(f.read()), predicted, names):
                    failures.append("replay --metrics-file: " + problem)
            log("watch and --metrics-file: pgtlsmon_what_if_* checked for %d policies" %
                len(names))
            if len(predicted) != base_n:
                failures.append("permissive capture: %d ClientHellos, %d connections made" %
                                (len(predicted), base_n))
            summary = []
            for name, pol in POLICIES:
                pcap, n, log_text = phase(name, full_settings(pol))
                actual = [r for r in replay(args.pgtlsmon, pcap, srv.port) if r["client_hello"]]
                truth = server_truth(log_text)
                agreed = compared = 0
                reasons = {}
                if len(actual) != len(predicted):
                    failures.append("%s: %d connections, %d in the permissive capture" %
                                    (name, len(actual), len(predicted)))
                for p, a in zip(predicted, actual):
                    if p["client_hello"]["ja4"] != a["client_hello"]["ja4"]:
                        failures.append("%s: connection order differs (JA4 %s vs %s)" % (
                            name, p["client_hello"]["ja4"], a["client_hello"]["ja4"]))
                        break
                    want = p["what_if_policies"][name]
                    port = a["client"]["port"]
                    t = truth.get(port)
                    if t is None:
                        # No server log line (the client gave up first): the capture decides.
                        tls = a["tls"] or {}
                        t = (a["outcome"], tls.get("version"), tls.get("cipher_suite"), None,
                             "no server log line")
                    compared += 1
                    got = {"outcome": t[0], "version": t[1], "cipher_suite": t[2],
                           "reason": t[3]}
                    if want is None:
                        want = {"outcome": None, "version": None, "cipher_suite": None,
                                "reason": None}
                    keys = ["outcome", "version", "cipher_suite"] if t[0] == "tls" else \
                        ["outcome", "reason"]
                    if got["outcome"] == "tls_failed":
                        reasons[got["reason"]] = reasons.get(got["reason"], 0) + 1
                    if all(want[k] == got[k] for k in keys):
                        agreed += 1
                    else:
                        failures.append("%s: client port %d (%s): predicted %s, server did %s (%s)"
                                        % (name, p["client"]["port"], p["client_hello"]["ja4"],
                                           want, got, t[4][-120:]))
                    # The capture of the strict server must agree with its own log.
                    if t[0] == "tls" and (a["outcome"] != "tls" or
                                          a["tls"]["version"] != t[1] or
                                          a["tls"]["cipher_suite"] != t[2]):
                        failures.append("%s: port %d: capture says %s %s, log says %s" % (
                            name, port, a["outcome"], a["tls"], t[:3]))
                summary.append((name, settings_text(pol), compared, agreed,
                                ", ".join("%s %d" % kv for kv in sorted(reasons.items(),
                                                                         key=str))))
            print("policy   compared  agreed  settings; failures the server logged")
            for name, text, compared, agreed, fails in summary:
                print("%-8s %8d %7d  %s; %s" % (name, compared, agreed, text, fails or "none"))
            print("total    %8d %7d" % (sum(s[2] for s in summary), sum(s[3] for s in summary)))
    finally:
        if args.keep:
            log("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    for f in failures:
        print("FAIL: %s" % f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
