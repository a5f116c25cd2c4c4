#!/usr/bin/env python3
"""The exporter under load (tests/hostile/README.md).

    scrape_load.py PGTLSMON [--scrapers 50] [--seconds 30]

Starts `pgtlsmon watch --interface lo --capture pcap --listen 127.0.0.1:<free> --ports <free>`
(needs CAP_NET_RAW), generates PostgreSQL startup traffic on loopback on the monitored port
(a tiny server answering SSLRequest with 'N', clients sending SSLRequest then a
StartupMessage, in a loop), and runs N concurrent scrapers of /metrics for the duration.
Fails on any failed scrape (error, timeout, non-200, a body without pgtlsmon_build_info), a
crash of the daemon, or no plaintext session counted. Prints p50/p90/p99/max latency.
"""
import argparse
import http.client
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_server(sock, stop):
    """Answers SSLRequest with 'N', reads the StartupMessage, closes."""
    sock.settimeout(0.5)
    while not stop.is_set():
        try:
            conn, _ = sock.accept()
        except socket.timeout:
            continue
        with conn:
            conn.settimeout(2)
            try:
                if conn.recv(8) != struct.pack(">II", 8, 80877103):
                    continue
                conn.sendall(b"N")
                n = struct.unpack(">I", conn.recv(4))[0]
                conn.recv(n - 4)
            except OSError:
                pass


def pg_client(port, stop, counter):
    body = struct.pack(">I", 196608) + b"user\0load\0database\0postgres\0\0"
    startup = struct.pack(">I", len(body) + 4) + body
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
                c.sendall(struct.pack(">II", 8, 80877103))
                if c.recv(1) == b"N":
                    c.sendall(startup)
                counter[0] += 1
        except OSError:
            pass
        time.sleep(0.002)


def scraper(port, deadline, lat, errors):
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", "/metrics")
            r = c.getresponse()
            body = r.read()
            c.close()
            if r.status != 200 or b"pgtlsmon_build_info" not in body:
                errors.append(f"status {r.status}")
                continue
        except Exception as e:  # noqa: BLE001 -- any failure counts
            errors.append(repr(e))
            continue
        lat.append(time.monotonic() - t0)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pgtlsmon")
    ap.add_argument("--scrapers", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=30)
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("SKIP: needs root (libpcap on lo)")
        return 77

    http_port, pg_port = free_port(), free_port()
    stop = threading.Event()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", pg_port))
    srv.listen(128)
    daemon = subprocess.Popen(
        [a.pgtlsmon, "watch", "--interface", "lo", "--capture", "pcap", "--ports", str(pg_port),
         "--listen", f"127.0.0.1:{http_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # Wait for /healthz.
    for _ in range(100):
        try:
            c = http.client.HTTPConnection("127.0.0.1", http_port, timeout=1)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                break
        except OSError:
            pass
        if daemon.poll() is not None:
            print("FAIL: pgtlsmon exited at start:", daemon.stderr.read().decode())
            return 1
        time.sleep(0.1)
    threads = [threading.Thread(target=pg_server, args=(srv, stop), daemon=True)]
    counter = [0]
    threads += [threading.Thread(target=pg_client, args=(pg_port, stop, counter), daemon=True)
                for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(1)

    lat, errors = [], []
    deadline = time.monotonic() + a.seconds
    scrapers = [threading.Thread(target=scraper, args=(http_port, deadline, lat, errors))
                for _ in range(a.scrapers)]
    t0 = time.monotonic()
    for t in scrapers:
        t.start()
    for t in scrapers:
        t.join()
    elapsed = time.monotonic() - t0

    # The daemon must have counted the traffic.
    c = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
    c.request("GET", "/metrics")
    body = c.getresponse().read().decode()
    stop.set()
    plaintext = sum(float(m) for m in re.findall(
        r'^pgtlsmon_sessions_total\{[^}]*outcome="plaintext"[^}]*\} (\S+)', body, re.M))
    alive = daemon.poll() is None
    daemon.send_signal(signal.SIGTERM)
    try:
        rc = daemon.wait(timeout=15)
    except subprocess.TimeoutExpired:
        daemon.kill()
        rc = "hung on SIGTERM"
    print(f"{len(lat)} scrapes by {a.scrapers} scrapers in {elapsed:.1f} s "
          f"({len(lat) / elapsed:.0f}/s), {len(errors)} failed; latency ms: "
          f"p50 {pct(lat, 50) * 1e3:.1f}, p90 {pct(lat, 90) * 1e3:.1f}, "
          f"p99 {pct(lat, 99) * 1e3:.1f}, max {max(lat, default=0) * 1e3:.1f}; "
          f"{counter[0]} PostgreSQL connections made, {plaintext:.0f} plaintext sessions counted; "
          f"daemon exit {rc}")
    problems = []
    if errors:
        problems.append(f"{len(errors)} failed scrapes, e.g. {errors[:3]}")
    if not alive:
        problems.append("the daemon died during the load")
    if rc != 0:
        problems.append(f"daemon exit {rc}: {daemon.stderr.read().decode()[-500:]}")
    if plaintext == 0:
        problems.append("no plaintext session counted")
    for p in problems:
        print("FAIL:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
