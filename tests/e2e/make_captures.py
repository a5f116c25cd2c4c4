#!/usr/bin/python3
"""Make small real PostgreSQL 15 TLS captures with two independent truths each.

Usage: make_captures.py [--outdir DIR] [--only NAME ...] [--port P] [--keep-tmp] [--no-verify]

For every capture NAME it writes into DIR (default tests/data/pcaps/):
  NAME.pcap          tcpdump -i lo on the server's port
  NAME.pgstat.jsonl  one line per session: the server's pg_stat_ssl view (for sessions that
                     reached a backend) and the scenario's expected outcome (pgharness)
  NAME.truth.jsonl   shared/tools/tshark-sessions --ports P NAME.pcap (Wireshark's view)
and then checks the two truths against each other (check_replay with tshark as the actual).
Must run as root; exits 77 when the machine cannot run the harness.
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pgharness as ph  # noqa: E402

SOURCE_DIR = os.path.dirname(os.path.dirname(HERE))
DEFAULT_OUTDIR = os.path.join(SOURCE_DIR, "tests", "data", "pcaps")
DEFAULT_SHARED = os.environ.get("PGTLS_SHARED_DIR", os.path.join(SOURCE_DIR, "..", "shared"))
PREFERRED_PORT = 15432
SERVER_FATAL_PROTOCOL_VERSION = {"from": "server", "description": "protocol_version"}


def tls_versions(h):
    """TLS 1.0 / 1.1 / 1.2 / 1.3 (with HelloRetryRequest) from psql and s_client, plaintext."""
    h.server.restart()  # defaults: ssl=on, ssl_min_protocol_version=TLSv1, SECLEVEL=0
    yield
    h.psql("psql-tls1.0", tls_version="TLSv1", expect_hrr=False)
    h.psql("psql-tls1.1", tls_version="TLSv1.1", expect_hrr=False)
    h.psql("psql-tls1.2", tls_version="TLSv1.2", expect_hrr=False)
    # PG15's ssl_ecdh_curve=prime256v1 vs OpenSSL's X25519 key share: HelloRetryRequest.
    h.psql("psql-tls1.3-default-hrr", expect_hrr=True)
    if h.server.ipv6:
        h.psql("psql-tls1.3-ipv6-sni", ipv6=True, sni=True, expect_hrr=True)
    h.psql("psql-sslmode-disable", sslmode="disable")
    h.s_client_starttls("s_client-tls1", tls_version="TLSv1", expect_hrr=False)
    h.s_client_starttls("s_client-tls1_1", tls_version="TLSv1.1", ipv6=h.server.ipv6,
                        expect_hrr=False)


def refused_and_failed(h):
    """Server ssl=off answers 'N'; then a TLS 1.2-minimum server refuses TLS 1.0/1.1 clients."""
    h.server.restart(ssl="off")
    yield
    h.psql("psql-prefer-N-plaintext", sslmode="prefer")
    h.psql("psql-require-N-gives-up", sslmode="require", expect_outcome="ssl_refused")
    h.s_client_starttls("s_client-N-gives-up", expect_outcome="ssl_refused")
    h.server.restart(ssl_min_protocol_version="TLSv1.2")
    h.psql("psql-tls1.0-1.1-vs-min1.2", min_version="TLSv1", max_version="TLSv1.1",
           expect_outcome="tls_failed", expect_alert=SERVER_FATAL_PROTOCOL_VERSION)
    h.s_client_starttls("s_client-tls1-vs-min1.2", tls_version="TLSv1",
                        expect_outcome="tls_failed", expect_alert=SERVER_FATAL_PROTOCOL_VERSION)
    h.s_client_starttls("s_client-tls1_1-vs-min1.2", tls_version="TLSv1.1", ipv6=h.server.ipv6,
                        expect_outcome="tls_failed", expect_alert=SERVER_FATAL_PROTOCOL_VERSION)


def direct_tls(h):
    """ClientHello without SSLRequest (PG17 sslnegotiation=direct style); PG15 closes."""
    h.server.restart()
    yield
    h.s_client_direct("s_client-direct-alpn")
    h.s_client_direct("s_client-direct-sni", servername="localhost")
    if h.server.ipv6:
        h.s_client_direct("s_client-direct-ipv6", ipv6=True)


SCENARIOS = {
    "pg15-tls-versions": tls_versions,
    "pg15-refused-and-failed": refused_and_failed,
    "pg15-direct-tls": direct_tls,
}


def tshark_truth(shared, pcap, port, out):
    tool = os.path.join(shared, "tools", "tshark-sessions")
    with open(out, "w") as f:
        subprocess.run([sys.executable, tool, "--ports", str(port), pcap], stdout=f, check=True,
                       timeout=120)


def make(outdir, names=None, port=None, keep_tmp=False, shared=DEFAULT_SHARED):
    """Make the captures; returns the list of pcap paths written."""
    os.makedirs(outdir, exist_ok=True)
    made = []
    with ph.Harness(keep=keep_tmp, port=port or PREFERRED_PORT) as h:
        h.start_server()
        for name in names or SCENARIOS:
            pcap = os.path.join(outdir, name + ".pcap")
            steps = SCENARIOS[name](h)
            next(steps)  # server (re)configured for this capture
            first = len(h.sessions)
            with h.capture(pcap) as cap:
                for _ in steps:
                    pass
            ph.log("%s: %s" % (name, cap.stats))
            h.write_pgstat(os.path.join(outdir, name + ".pgstat.jsonl"), h.sessions[first:])
            tshark_truth(shared, pcap, h.server.port, os.path.join(outdir, name + ".truth.jsonl"))
            made.append(pcap)
    return made


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--outdir", default=DEFAULT_OUTDIR)
    ap.add_argument("--only", nargs="+", choices=sorted(SCENARIOS))
    ap.add_argument("--port", type=int, help="server port to try first (default %d)" % PREFERRED_PORT)
    ap.add_argument("--shared-dir", default=DEFAULT_SHARED)
    ap.add_argument("--keep-tmp", action="store_true", help="keep the server's temp dir")
    ap.add_argument("--no-verify", action="store_true",
                    help="skip the pg_stat_ssl vs tshark cross-check")
    args = ap.parse_args()
    why = ph.missing_requirements()
    if why:
        print("make_captures: skipped: %s" % "; ".join(why), file=sys.stderr)
        sys.exit(77)
    t0 = time.time()
    made = make(args.outdir, args.only, args.port, args.keep_tmp, args.shared_dir)
    ph.log("made %d captures in %.1f s" % (len(made), time.time() - t0))
    if args.no_verify:
        return
    import check_replay
    total = check_replay.Tally()
    for pcap in made:
        total.add(check_replay.check_capture(pcap, shared_dir=args.shared_dir, tshark_as_actual=True))
    print("%d passed, %d failed" % (total.passed, total.failed))
    sys.exit(1 if total.failed else 0)


if __name__ == "__main__":
    main()
