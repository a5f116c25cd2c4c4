#!/usr/bin/python3
"""The /metrics endpoint under abuse (issue 12, item 4; tests/hostile/README.md).

    http_abuse.py PGTLSMON [--node-exporter PATH] [--cases slowloris,fds,odd,load]

Runs each case against `pgtlsmon watch --capture pcap` on a loopback port and, when
--node-exporter is given (Debian's prometheus-node-exporter), against node_exporter on another
loopback port (with an empty --web.config.file: exporter-toolkit's server), and prints the
figures side by side. Fails only on pgtlsmon's behaviour:

- slowloris: 1000 connections send part of a request head, half of them then trickle a header
  line every 3 s, half go idle; meanwhile a scrape every 0.5 s on a new connection must answer
  200 within 2 s, and after 14 s the server must have closed >= 95 % of them.
- fds: the server under `prlimit --nofile=64` and 100 idle connections: its CPU time over
  3 s must stay under 10 % (no busy loop on EMFILE), and a scrape made meanwhile must succeed
  once the idle connections go.
- odd: 1 MiB of headers, a 100 KB request line, 4 KiB of random bytes, NUL bytes, '..' paths,
  10 000 pipelined requests (read as they come), a client that pipelines 2 000 scrapes and
  never reads: each gets an answer or a close, and the next scrape answers 200.
- load: 50 threads x 100 scrapes (a new connection each): zero errors; p50/p99/max printed.
Root (libpcap on lo); 77 = skipped.
"""
import argparse
import http.client
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


def scrape(port, path="/metrics", timeout=5):
    """(status, seconds); status 0 on a failure."""
    t0 = time.monotonic()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        c.close()
        return r.status, time.monotonic() - t0
    except Exception:  # noqa: BLE001 -- any failure counts
        return 0, time.monotonic() - t0


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Target:
    def __init__(self, name, cmd_for_port, cheap_path):
        self.name, self.cmd_for_port, self.cheap_path = name, cmd_for_port, cheap_path
        self.proc = None

    def start(self, prlimit=None):
        self.port = free_port()
        cmd = self.cmd_for_port(self.port)
        if prlimit:
            cmd = ["prlimit", "--nofile=%d:%d" % (prlimit, prlimit), "--"] + cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        # Drain stderr so a chatty server never blocks on a full pipe.
        threading.Thread(target=lambda p=self.proc: p.stderr.read(), daemon=True).start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited %s at start" % (self.name, self.proc.returncode))
            if scrape(self.port, timeout=1)[0] == 200:
                return
            time.sleep(0.1)
        raise RuntimeError("%s did not answer /metrics" % self.name)

    @property
    def pid(self):
        # Under prlimit, the server is prlimit's exec'd image: the same pid.
        return self.proc.pid

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        alive_before = self.proc.returncode
        self.proc = None
        return alive_before


def open_conns(port, n, first=b""):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", port))
            if first:
                s.sendall(first)
        except OSError:
            s.close()
            continue
        s.setblocking(False)
        socks.append(s)
    return socks


def closed_by_peer(s):
    try:
        return s.recv(65536) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def case_slowloris(t, n=1000, seconds=14):
    t.start()
    half = n // 2
    head = b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
    trickle = open_conns(t.port, half, head)
    idle = open_conns(t.port, n - half, head)
    stop = threading.Event()

    def drip():
        while not stop.wait(3):
            for s in trickle:
                try:
                    s.send(b"X-a: b\r\n")
                except OSError:
                    pass

    th = threading.Thread(target=drip)
    th.start()
    lat, fails = [], 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        st, dt = scrape(t.port, timeout=5)
        lat.append(dt)
        fails += st != 200
        time.sleep(0.5)
    stop.set()
    th.join()
    closed_t = sum(closed_by_peer(s) for s in trickle)
    closed_i = sum(closed_by_peer(s) for s in idle)
    for s in trickle + idle:
        s.close()
    after = scrape(t.port)[0]
    t.stop()
    r = {"opened": len(trickle) + len(idle), "scrapes": len(lat), "failed": fails,
         "max_latency_s": round(max(lat), 3), "p50_latency_s": round(pct(lat, 50), 3),
         "trickling_closed": "%d/%d" % (closed_t, len(trickle)),
         "idle_closed": "%d/%d" % (closed_i, len(idle)), "scrape_after": after}
    ok = (fails == 0 and max(lat) < 2 and after == 200 and
          closed_t + closed_i >= 0.95 * (len(trickle) + len(idle)))
    return ok, r


def case_fds(t, nofile=64, idle_n=100):
    t.start(prlimit=nofile)
    idle = open_conns(t.port, idle_n)
    time.sleep(1)
    c0, w0 = cpu_seconds(t.pid), time.monotonic()
    time.sleep(3)
    cpu = (cpu_seconds(t.pid) - c0) / (time.monotonic() - w0)
    # A scrape while descriptors are exhausted: it waits in the listen backlog.
    res = {}
    th = threading.Thread(target=lambda: res.update(r=scrape(t.port, timeout=20)))
    th.start()
    time.sleep(1)
    for s in idle:
        s.close()
    th.join()
    status, dt = res["r"]
    again = scrape(t.port)[0]
    t.stop()
    r = {"cpu_percent_while_exhausted": round(100 * cpu, 1),
         "scrape_during": status, "its_latency_s": round(dt, 2), "scrape_after": again}
    return cpu < 0.10 and status == 200 and again == 200, r


def read_all(s, seconds):
    """Bytes until the peer closes or `seconds` pass; (bytes, closed)."""
    s.settimeout(0.5)
    got = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(1 << 20)
        except socket.timeout:
            continue
        except OSError:
            return got, True
        if not chunk:
            return got, True
        got += chunk
    return got, False


def one_shot(port, payload, seconds=12):
    """Sends payload (in a thread: the server may stop reading), returns the answer."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    th = threading.Thread(target=lambda: _send_quietly(s, payload))
    th.start()
    got, closed = read_all(s, seconds)
    th.join()
    s.close()
    status = got[:12].decode(errors="replace") if got.startswith(b"HTTP/") else ""
    return (status.split(" ")[1] if status else "close" if closed else "open"), got


def _send_quietly(s, payload):
    try:
        s.sendall(payload)
    except OSError:
        pass


def case_odd(t):
    t.start()
    rnd = random.Random(12)
    cases = [
        ("1 MiB of headers", b"GET /metrics HTTP/1.1\r\n" +
         b"".join(b"X-%d: %s\r\n" % (i, b"a" * 1000) for i in range(1048)) + b"\r\n"),
        ("100 KB request line", b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\n\r\n"),
        ("4 KiB random bytes", bytes(rnd.getrandbits(8) for _ in range(4096))),
        ("NUL bytes", b"GET /met\0rics HTTP/1.0\r\nHost: \0\0\r\n\r\n"),
        ("../ path", b"GET /../../etc/passwd HTTP/1.0\r\n\r\n"),
        ("/metrics/../metrics", b"GET /metrics/../metrics HTTP/1.0\r\n\r\n"),
    ]
    r, ok = {}, True
    for name, payload in cases:
        status, _ = one_shot(t.port, payload)
        after = scrape(t.port)[0]
        r[name] = "%s, next scrape %d" % (status, after)
        ok = ok and after == 200 and status != "open"

    # 10 000 pipelined requests, read as they come.
    n = 10000
    req = ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % t.cheap_path).encode()
    s = socket.create_connection(("127.0.0.1", t.port), timeout=5)
    th = threading.Thread(target=lambda: _send_quietly(s, req * n))
    t0 = time.monotonic()
    th.start()
    got = b""
    s.settimeout(0.5)
    while got.count(b"HTTP/1.1 ") < n and time.monotonic() - t0 < 30:
        try:
            chunk = s.recv(1 << 20)
        except socket.timeout:
            continue
        except OSError:
            break
        if not chunk:
            break
        got += chunk
    th.join()
    s.close()
    answers = got.count(b"HTTP/1.1 ")
    r["10000 pipelined"] = "%d answered in %.1f s, next scrape %d" % (
        answers, time.monotonic() - t0, scrape(t.port)[0])
    ok = ok and answers in (n,) and scrape(t.port)[0] == 200

    # A client that pipelines 2 000 scrapes and never reads; scrapes meanwhile.
    s = socket.create_connection(("127.0.0.1", t.port), timeout=5)
    s.setblocking(False)
    try:
        s.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 2000)
    except OSError:
        pass
    lat = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 13:
        st, dt = scrape(t.port, timeout=5)
        lat.append(dt if st == 200 else 99)
        time.sleep(0.5)
    # Has the server given up on it? Its queued answers come first; then the close.
    closed = False
    s.setblocking(True)
    s.settimeout(0.2)
    try:
        while True:
            if not s.recv(1 << 20):
                closed = True
                break
    except socket.timeout:
        pass
    except OSError:
        closed = True
    s.close()
    r["never-reading client"] = "%s after 13 s; scrapes meanwhile max %.3f s" % (
        "closed" if closed else "still open", max(lat))
    ok = ok and max(lat) < 2 and closed
    t.stop()
    return ok, r


def case_load(t, threads=50, per=100):
    t.start()
    lat, errors = [], []
    lock = threading.Lock()

    def worker():
        for _ in range(per):
            st, dt = scrape(t.port, timeout=10)
            with lock:
                if st == 200:
                    lat.append(dt)
                else:
                    errors.append(st)

    ths = [threading.Thread(target=worker) for _ in range(threads)]
    t0 = time.monotonic()
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    wall = time.monotonic() - t0
    t.stop()
    r = {"scrapes": len(lat) + len(errors), "errors": len(errors),
         "error_statuses": sorted(set(errors))[:5], "per_second": round(len(lat) / wall),
         "p50_ms": round(1000 * pct(lat, 50), 1), "p99_ms": round(1000 * pct(lat, 99), 1),
         "max_ms": round(1000 * max(lat), 1) if lat else None}
    return not errors, r


CASES = {"slowloris": case_slowloris, "fds": case_fds, "odd": case_odd, "load": case_load}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pgtlsmon")
    ap.add_argument("--node-exporter", default="")
    ap.add_argument("--cases", default=",".join(CASES))
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("SKIP: needs root (libpcap on lo)")
        return 77
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    pg_port = free_port()
    targets = [Target("pgtlsmon", lambda p: [a.pgtlsmon, "watch", "--interface", "lo",
                                             "--capture", "pcap", "--ports", str(pg_port),
                                             "--listen", "127.0.0.1:%d" % p], "/healthz")]
    tmp = tempfile.mkdtemp(prefix="pgtlsmon-abuse-")
    if a.node_exporter and os.access(a.node_exporter, os.X_OK):
        webcfg = os.path.join(tmp, "web.yml")
        with open(webcfg, "w") as f:
            f.write("{}\n")
        targets.append(Target("node_exporter", lambda p: [
            a.node_exporter, "--web.listen-address", "127.0.0.1:%d" % p,
            "--web.config.file", webcfg, "--collector.disable-defaults"], "/"))
    failed = []
    for case in a.cases.split(","):
        for t in targets:
            try:
                ok, r = CASES[case](t)
            except Exception as e:  # noqa: BLE001
                ok, r = False, {"error": repr(e)}
                if t.proc:
                    t.stop()
            verdict = "ok" if ok else ("FAIL" if t.name == "pgtlsmon" else "(fails)")
            print("%-10s %-14s %-7s %s" % (case, t.name, verdict, r), flush=True)
            if not ok and t.name == "pgtlsmon":
                failed.append(case)
    os.rmdir(tmp) if not os.listdir(tmp) else None
    print("failed: %s" % (failed or "none"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
