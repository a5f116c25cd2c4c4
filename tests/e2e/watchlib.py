#!/usr/bin/python3
"""Helpers for the live-monitoring tests: a `pgtlsmon watch` process, a real Prometheus
server, tiny raw PostgreSQL clients that bind a chosen 127.0.0.x source address, and a
/metrics parser. Python 3 standard library only.

    with WatchProcess(binary, ports=[5432], session_log=path) as w:   # waits for /healthz
        raw_plaintext_session(5432, source="127.0.0.2")               # StartupMessage in clear
        w.wait_for_metric("pgtlsmon_sessions_total", 1)
    # stopped with SIGTERM; w.returncode, w.stderr_text()

Every process started here is registered with pgharness's clean-up (atexit, SIGTERM/SIGHUP),
so a failing test does not leave a daemon or a Prometheus behind.
"""
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pgharness as ph

PROMETHEUS = os.environ.get("PGTLS_PROMETHEUS", "/usr/bin/prometheus")
PROMTOOL = os.environ.get("PGTLS_PROMTOOL", "/usr/bin/promtool")


class WatchError(Exception):
    pass


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    """(status, body text); status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, OSError):
        return 0, ""


_SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text format -> [(name, {label: value}, float)]."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            continue
        labels = {k: bytes(v, "utf-8").decode("unicode_escape") for k, v in _LABEL_RE.findall(m.group(2) or "")}
        out.append((m.group(1), labels, float(m.group(3))))
    return out


def metric_sum(samples, name, **match):
    return sum(v for n, l, v in samples if n == name and all(l.get(k) == w for k, w in match.items()))


class _Proc:
    """A child process with its stderr collected by a thread; close() kills it."""

    def __init__(self, cmd, name):
        self.cmd, self.name = cmd, name
        self.lines = []
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        ph._register(self)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for raw in self.proc.stderr:
            self.lines.append(raw.decode(errors="replace"))

    @property
    def pid(self):
        return self.proc.pid

    def stderr_text(self):
        return "".join(self.lines)

    def alive(self):
        return self.proc.poll() is None

    def wait_stderr(self, pattern, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if re.search(pattern, self.stderr_text()):
                return True
            if not self.alive():
                self._reader.join(2)
                return bool(re.search(pattern, self.stderr_text()))
            time.sleep(0.05)
        return False

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Sends sig, waits; returns the exit code (kills after timeout, then returns None)."""
        rc = None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        else:
            rc = self.proc.returncode
        self._reader.join(2)
        ph._unregister(self)
        return rc

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        ph._unregister(self)

    def __repr__(self):
        return "%s(pid %d)" % (self.name, self.proc.pid)


class WatchProcess(_Proc):
    """`pgtlsmon watch` on lo. start waits until /healthz answers 200."""

    def __init__(self, binary, ports, *, interface="lo", capture="pcap", listen=None,
                 session_log=None, extra=(), wait=True):
        self.listen = listen or "127.0.0.1:%d" % free_port()
        cmd = [binary, "watch", "--interface", interface, "--capture", capture,
               "--ports", ",".join(map(str, ports)), "--listen", self.listen]
        if session_log:
            cmd += ["--session-log", session_log]
        cmd += list(extra)
        self.returncode = None
        super().__init__(cmd, "pgtlsmon-watch")
        if wait:
            self.wait_ready()

    @property
    def url(self):
        return "http://%s" % self.listen

    def wait_ready(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not self.alive():
                raise WatchError("%s exited %s: %s" % (" ".join(self.cmd), self.proc.returncode,
                                                       self.stderr_text().strip()))
            if http_get(self.url + "/healthz", timeout=1)[0] == 200:
                return self
            time.sleep(0.05)
        raise WatchError("pgtlsmon watch not healthy after %ds: %s" % (timeout, self.stderr_text()))

    def metrics(self):
        status, body = http_get(self.url + "/metrics")
        if status != 200:
            raise WatchError("GET /metrics: %d" % status)
        return body

    def samples(self):
        return parse_metrics(self.metrics())

    def wait_for_metric(self, name, value, timeout=10, **match):
        """Waits until the sum of `name` (matching labels) reaches value; returns it."""
        deadline = time.time() + timeout
        got = None
        while time.time() < deadline:
            got = metric_sum(self.samples(), name, **match)
            if got >= value:
                return got
            time.sleep(0.1)
        return got

    def stop(self, sig=signal.SIGTERM, timeout=15):
        self.returncode = super().stop(sig, timeout)
        return self.returncode

    def __enter__(self):
        return self

    def __exit__(self, *_):
        if self.alive():
            self.stop()


class Prometheus(_Proc):
    """A real Prometheus server scraping `targets` every second, with its own temp TSDB."""

    def __init__(self, targets, *, job="pgtlsmon", interval="1s", workdir=None):
        self.workdir = tempfile.mkdtemp(prefix="pgtlsmon-prom-", dir=workdir)
        self.port = free_port()
        self.job = job
        cfg = os.path.join(self.workdir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: %s\n  scrape_timeout: %s\n"
                    "  evaluation_interval: %s\n"
                    "scrape_configs:\n  - job_name: %s\n    static_configs:\n"
                    "      - targets: [%s]\n" % (interval, interval, interval, job,
                                                 ", ".join('"%s"' % t for t in targets)))
        cmd = [PROMETHEUS, "--config.file", cfg,
               "--storage.tsdb.path", os.path.join(self.workdir, "data"),
               "--web.listen-address", "127.0.0.1:%d" % self.port,
               "--storage.tsdb.retention.time", "1h", "--log.level", "warn"]
        super().__init__(cmd, "prometheus")

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def query(self, expr):
        """/api/v1/query -> [(labels, float)] (vector results)."""
        status, body = http_get(self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        if status != 200:
            raise WatchError("query %r: HTTP %d %s" % (expr, status, body[:300]))
        data = json.loads(body)
        if data.get("status") != "success":
            raise WatchError("query %r: %s" % (expr, body[:300]))
        res = data["data"]["result"]
        if data["data"]["resultType"] == "scalar":
            return [({}, float(res[1]))]
        return [(r["metric"], float(r["value"][1])) for r in res]

    def wait_up(self, timeout=30):
        """Waits until up{job} == 1 for every target; returns the time of that scrape."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not self.alive():
                raise WatchError("prometheus exited %s: %s" % (self.proc.returncode, self.stderr_text()[-2000:]))
            if http_get(self.url + "/-/ready", timeout=1)[0] == 200:
                try:
                    res = self.query('up{job="%s"}' % self.job)
                except WatchError:
                    res = []
                if res and all(v == 1 for _l, v in res):
                    return self.last_scrape()
            time.sleep(0.2)
        raise WatchError("prometheus: target not up after %ds: %s" % (timeout, self.stderr_text()[-2000:]))

    def last_scrape(self):
        """Unix time of the newest scrape of the job (timestamp(up))."""
        res = self.query('max(timestamp(up{job="%s"}))' % self.job)
        return res[0][1] if res else 0.0

    def wait_scrapes_after(self, t, n=2, interval=1.0, timeout=30):
        """Waits until n scrapes happened after Unix time t."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.last_scrape() >= t + (n - 1) * interval + 0.001:
                return True
            time.sleep(0.2)
        return False

    def close(self):
        super().close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        rc = super().stop(sig, timeout)
        shutil.rmtree(self.workdir, ignore_errors=True)
        return rc


def promtool_check_metrics(text):
    """(ok, output) of `promtool check metrics` on a /metrics body."""
    res = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                         text=True, timeout=30)
    return res.returncode == 0, (res.stdout + res.stderr).strip()


# ---------------------------------------------------------------------------------------------
# Raw PostgreSQL clients that choose their source address (libpq cannot).

SSL_REQUEST = struct.pack(">II", 8, 80877103)


def _connect(port, source, host="127.0.0.1", timeout=5):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect((host, port))
    return s


def _read_until_close(s, limit=1 << 16):
    got = b""
    try:
        while len(got) < limit:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except (socket.timeout, OSError):
        pass
    return got


def raw_plaintext_session(port, source="127.0.0.1", ssl_request_first=False, user="postgres",
                          application_name="pgtlsmon-test"):
    """One connection from `source`: [SSLRequest, read the answer,] StartupMessage in clear,
    then Terminate. Returns (client_port, bytes the server sent)."""
    s = _connect(port, source)
    try:
        cport = s.getsockname()[1]
        reply = b""
        if ssl_request_first:
            s.sendall(SSL_REQUEST)
            reply = s.recv(1)
            if reply != b"N":
                raise WatchError("SSLRequest answered %r, expected N" % reply)
        s.sendall(ph.pg_startup_message(user=user, application_name=application_name))
        # The server answers (authentication request or error); then say goodbye politely.
        first = s.recv(4096)
        reply += first
        try:
            if first[:1] == b"R":
                s.sendall(ph.PG_TERMINATE)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server already closed
        reply += _read_until_close(s)
        return cport, reply
    finally:
        s.close()


class FakePgServer:
    """A tiny listener standing in for PostgreSQL on 127.0.0.1:port (all of 127/8 reaches it
    through lo): answers SSLRequest with 'N', swallows a StartupMessage, replies with an
    ErrorResponse and closes. Enough for pgtlsmon to classify plaintext/ssl_refused sessions
    without a real server."""

    def __init__(self, port=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port or 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _serve(conn):
        conn.settimeout(5)
        try:
            while True:
                head = b""
                while len(head) < 8:
                    chunk = conn.recv(8 - len(head))
                    if not chunk:
                        return
                    head += chunk
                length, code = struct.unpack(">II", head)
                rest = b""
                while len(rest) < length - 8:
                    chunk = conn.recv(length - 8 - len(rest))
                    if not chunk:
                        return
                    rest += chunk
                if code in (80877103, 80877104):  # SSLRequest / GSSENCRequest
                    conn.sendall(b"N")
                    continue
                body = b"SFATAL\0C28000\0Mpgtlsmon test listener\0\0"
                conn.sendall(b"E" + struct.pack(">I", len(body) + 4) + body)
                return
        except OSError:
            return
        finally:
            conn.close()

    def close(self):
        self._stop = True
        self.sock.close()
        self._thread.join(2)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()


def load_jsonl(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                if line.strip():
                    out.append(json.loads(line))
    except FileNotFoundError:
        pass
    return out


def wait_records(path, n, timeout=10, pred=None):
    """Waits until `path` holds at least n records (matching pred); returns them all."""
    deadline = time.time() + timeout
    recs = []
    while time.time() < deadline:
        recs = load_jsonl(path)
        if sum(1 for r in recs if pred is None or pred(r)) >= n:
            return recs
        time.sleep(0.1)
    return recs
