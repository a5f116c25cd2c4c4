#!/usr/bin/python3
"""Real-traffic harness: a throwaway PostgreSQL 15 server with TLS, tcpdump on lo, real clients.

Python 3 standard library only; must run as root (tcpdump, runuser). Everything it starts is
stopped and everything it creates is removed on exit, also when a test fails (try/finally in
the context managers, plus an atexit hook and SIGTERM/SIGHUP handlers as a last resort, plus
`reap_stale()` for the leftovers of a harness that was SIGKILLed).

Typical use (a live-monitoring test does the same, with its monitor running instead of, or
next to, tcpdump):

    import pgharness as ph
    with ph.Harness() as h:                         # temp dir + CA + server certificate
        srv = h.start_server()                      # PG15 on a free port, TLSv1..1.3, SECLEVEL=0
        with h.capture("/tmp/x.pcap"):              # tcpdump -i lo 'tcp port <srv.port>'
            h.psql("tls13", expect_hrr=True)        # one Session per client run
            h.psql("tls10", tls_version="TLSv1")
            srv.restart(ssl="off")
            h.psql("refused", sslmode="require", expect_outcome="ssl_refused")
        h.write_pgstat("/tmp/x.pgstat.jsonl")       # truth: pg_stat_ssl view + expectations

Each client helper returns a `Session`; `Session.server_view` is what the server itself said
about the connection (pg_stat_ssl: ssl, version, cipher, client address and port) for sessions
that reached a backend, `Session.client` the client's (ip, port). Ports of sessions that never
reached a backend are taken from the SYNs in the capture, in order (`Harness.capture` does that
when it stops; without a capture they stay None).
"""
import atexit
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

PG_BIN = os.environ.get("PGHARNESS_PG_BIN", "/usr/lib/postgresql/15/bin")
PG_USER = "postgres"
TMP_PREFIX = "pgharness-"

# What each scenario's session is expected to end as (the `outcome` of session-record.md).
OUTCOMES = ("tls", "tls_failed", "incomplete", "gssenc", "plaintext", "cancel", "ssl_refused",
            "unknown")
VERSION_FLAGS = {"TLSv1": "-tls1", "TLSv1.1": "-tls1_1", "TLSv1.2": "-tls1_2", "TLSv1.3": "-tls1_3"}
LEGACY_VERSIONS = ("TLSv1", "TLSv1.1")

# Server settings every start begins from; start()/restart() keyword arguments override them.
DEFAULT_SETTINGS = {
    "ssl": "on",
    "ssl_min_protocol_version": "TLSv1",
    "ssl_ciphers": "DEFAULT:@SECLEVEL=0",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "16MB",
    "max_connections": "20",
    "log_connections": "on",
    "log_disconnections": "on",
}

# OpenSSL name -> (IANA name, code) for the suites these tests meet; cipher_table() extends it
# from `openssl ciphers -stdname` on the machine when it can.
STATIC_CIPHERS = {
    "TLS_AES_256_GCM_SHA384": ("TLS_AES_256_GCM_SHA384", 0x1302),
    "TLS_CHACHA20_POLY1305_SHA256": ("TLS_CHACHA20_POLY1305_SHA256", 0x1303),
    "TLS_AES_128_GCM_SHA256": ("TLS_AES_128_GCM_SHA256", 0x1301),
    "ECDHE-RSA-AES256-GCM-SHA384": ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", 0xc030),
    "ECDHE-RSA-AES128-GCM-SHA256": ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 0xc02f),
    "ECDHE-RSA-CHACHA20-POLY1305": ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", 0xcca8),
    "ECDHE-RSA-AES256-SHA384": ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", 0xc028),
    "ECDHE-RSA-AES128-SHA256": ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", 0xc027),
    "ECDHE-RSA-AES256-SHA": ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", 0xc014),
    "ECDHE-RSA-AES128-SHA": ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", 0xc013),
    "DHE-RSA-AES256-GCM-SHA384": ("TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", 0x009f),
    "DHE-RSA-AES256-SHA": ("TLS_DHE_RSA_WITH_AES_256_CBC_SHA", 0x0039),
    "DHE-RSA-AES128-SHA": ("TLS_DHE_RSA_WITH_AES_128_CBC_SHA", 0x0033),
    "AES256-GCM-SHA384": ("TLS_RSA_WITH_AES_256_GCM_SHA384", 0x009d),
    "AES128-GCM-SHA256": ("TLS_RSA_WITH_AES_128_GCM_SHA256", 0x009c),
    "AES256-SHA": ("TLS_RSA_WITH_AES_256_CBC_SHA", 0x0035),
    "AES128-SHA": ("TLS_RSA_WITH_AES_128_CBC_SHA", 0x002f),
    "DES-CBC3-SHA": ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", 0x000a),
}
_cipher_table = None


def cipher_table():
    """OpenSSL cipher name -> (IANA name, code), from `openssl ciphers -V -stdname` plus
    STATIC_CIPHERS (which wins: it does not depend on the local OpenSSL build)."""
    global _cipher_table
    if _cipher_table is None:
        table = {}
        try:
            out = subprocess.run(["openssl", "ciphers", "-V", "-stdname",
                                  "ALL:COMPLEMENTOFALL:@SECLEVEL=0"],
                                 capture_output=True, text=True, timeout=10).stdout
            for line in out.splitlines():
                m = re.match(r"\s*0x([0-9A-Fa-f]{2}),0x([0-9A-Fa-f]{2}) - (\S+)\s+- (\S+)", line)
                if m:
                    table[m.group(4)] = (m.group(3), int(m.group(1) + m.group(2), 16))
        except (OSError, subprocess.SubprocessError):
            pass
        table.update(STATIC_CIPHERS)
        _cipher_table = table
    return _cipher_table


def cipher_facts(openssl_name):
    """{'cipher', 'cipher_iana', 'cipher_suite'} for an OpenSSL cipher name (None -> nulls)."""
    if not openssl_name:
        return {"cipher": None, "cipher_iana": None, "cipher_suite": None}
    iana, code = cipher_table().get(openssl_name, (None, None))
    return {"cipher": openssl_name, "cipher_iana": iana,
            "cipher_suite": "0x%04x" % code if code is not None else None}


class HarnessError(Exception):
    pass


class PortTaken(HarnessError):
    pass


def log(msg):
    print("pgharness: %s" % msg, file=sys.stderr, flush=True)


def missing_requirements():
    """Why this machine cannot run the harness ([] when it can)."""
    why = []
    if os.geteuid() != 0:
        why.append("not running as root")
    for prog in ("initdb", "pg_ctl", "postgres", "psql"):
        if not os.access(os.path.join(PG_BIN, prog), os.X_OK):
            why.append("%s/%s missing (PostgreSQL 15 server not installed)" % (PG_BIN, prog))
    for prog in ("tcpdump", "openssl", "runuser"):
        if shutil.which(prog) is None:
            why.append("%s not found" % prog)
    try:
        import pwd
        pwd.getpwnam(PG_USER)
    except KeyError:
        why.append("no '%s' user" % PG_USER)
    return why


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_port(preferred=None):
    """A TCP port free on 127.0.0.1 (and ::1 when present); `preferred` first if it is free."""
    def free(port):
        fams = [(socket.AF_INET, "127.0.0.1")] + ([(socket.AF_INET6, "::1")] if ipv6_loopback() else [])
        socks = []
        try:
            for fam, addr in fams:
                s = socket.socket(fam, socket.SOCK_STREAM)
                socks.append(s)
                s.bind((addr, port))
                port = s.getsockname()[1]
            return port
        except OSError:
            return None
        finally:
            for s in socks:
                s.close()
    for cand in ([preferred] if preferred else []) + [0] * 20:
        port = free(cand)
        if port and port != 5432:
            return port
    raise HarnessError("no free loopback port")


def run(cmd, *, check=True, timeout=60, **kw):
    res = subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)
    if check and res.returncode != 0:
        err = res.stderr.decode(errors="replace") if isinstance(res.stderr, bytes) else res.stderr
        raise HarnessError("%s failed (%d): %s" % (" ".join(map(str, cmd)), res.returncode, err.strip()))
    return res


# ---------------------------------------------------------------------------------------------
# Cleanup registry: every live resource registers a close(); atexit and signals run them.

_live = []
_live_lock = threading.Lock()


def _register(obj):
    with _live_lock:
        _live.append(obj)


def _unregister(obj):
    with _live_lock:
        if obj in _live:
            _live.remove(obj)


def _cleanup_all():
    with _live_lock:
        objs = list(reversed(_live))
    for obj in objs:
        try:
            obj.close()
        except Exception as e:  # cleanup must go on
            log("cleanup of %r failed: %s" % (obj, e))


def _on_signal(signum, _frame):
    _cleanup_all()
    sys.exit(128 + signum)


atexit.register(_cleanup_all)
for _sig in (signal.SIGTERM, signal.SIGHUP):
    try:
        if signal.getsignal(_sig) in (signal.SIG_DFL, None):
            signal.signal(_sig, _on_signal)
    except ValueError:  # not the main thread
        pass


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def reap_stale(tmp=None):
    """Stop servers and remove dirs left by harness runs whose process no longer exists
    (e.g. killed by a CTest timeout, which cannot be caught)."""
    tmp = tmp or tempfile.gettempdir()
    for name in os.listdir(tmp):
        path = os.path.join(tmp, name)
        if not name.startswith(TMP_PREFIX) or not os.path.isdir(path):
            continue
        try:
            with open(os.path.join(path, "owner.pid")) as f:
                owner = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if _pid_alive(owner):
            continue
        datadir = os.path.join(path, "pg", "data")
        if os.path.exists(os.path.join(datadir, "postmaster.pid")):
            subprocess.run(["runuser", "-u", PG_USER, "--", os.path.join(PG_BIN, "pg_ctl"),
                            "-D", datadir, "-m", "immediate", "-w", "stop"], capture_output=True)
        tcpdump_pid = os.path.join(path, "tcpdump.pid")
        if os.path.exists(tcpdump_pid):
            try:
                with open(tcpdump_pid) as f:
                    pid = int(f.read().strip())
                with open("/proc/%d/comm" % pid) as f:
                    if f.read().strip() == "tcpdump":
                        os.kill(pid, signal.SIGTERM)
            except (OSError, ValueError):
                pass
        shutil.rmtree(path, ignore_errors=True)
        log("removed stale %s (owner pid %d gone)" % (path, owner))


# ---------------------------------------------------------------------------------------------
# Certificates

def make_certs(directory, cn="localhost"):
    """A throwaway CA and a server certificate (RSA 2048, CN=localhost, SAN localhost,
    127.0.0.1, ::1) in `directory`. Returns {'ca_cert', 'ca_key', 'server_cert', 'server_key'}."""
    d = directory
    p = {k: os.path.join(d, v) for k, v in (("ca_key", "ca.key"), ("ca_cert", "ca.crt"),
                                             ("server_key", "server.key"), ("csr", "server.csr"),
                                             ("server_cert", "server.crt"), ("ext", "server.ext"))}
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "30",
         "-subj", "/CN=pgharness test CA/O=pgtlsmon", "-keyout", p["ca_key"], "-out", p["ca_cert"],
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256",
         "-subj", "/CN=%s" % cn, "-keyout", p["server_key"], "-out", p["csr"]])
    with open(p["ext"], "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n")
    run(["openssl", "x509", "-req", "-in", p["csr"], "-CA", p["ca_cert"], "-CAkey", p["ca_key"],
         "-CAcreateserial", "-days", "30", "-sha256", "-extfile", p["ext"], "-out", p["server_cert"]])
    os.chmod(p["server_key"], 0o600)
    del p["csr"], p["ext"]
    return p


# ---------------------------------------------------------------------------------------------
# PostgreSQL server

class PgServer:
    """initdb + a postgres server owned by the `postgres` user, in `workdir` (which that user
    must own). start()/restart() take setting overrides on top of DEFAULT_SETTINGS."""

    def __init__(self, workdir, certs, port=None, ipv6=None, netns=None):
        self.workdir = workdir
        self.netns = netns  # a NetnsPair: the server runs in netns.server_ns on its veth address
        if netns is not None:
            self.host4 = netns.server_ip4
            self.host6 = netns.server_ip6
            if ipv6 is None:
                ipv6 = netns.server_ip6 is not None
        self.datadir = os.path.join(workdir, "data")
        self.sockdir = os.path.join(workdir, "sock")
        self.logfile = os.path.join(workdir, "postgres.log")
        self.certs = certs
        self.ipv6 = ipv6_loopback() if ipv6 is None else ipv6
        self.port = port or free_port()
        self.settings = {}
        self.running = False
        self._initdb()
        _register(self)

    host4 = "127.0.0.1"
    host6 = "::1"

    def _as_pg(self, args, **kw):
        prefix = self.netns.exec_prefix("server") if self.netns is not None else []
        return run(prefix + ["runuser", "-u", PG_USER, "--"] + args, **kw)

    def _initdb(self):
        os.makedirs(self.sockdir, exist_ok=True)
        shutil.chown(self.sockdir, PG_USER, PG_USER)
        self._as_pg([os.path.join(PG_BIN, "initdb"), "-D", self.datadir, "-U", PG_USER,
                     "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"], timeout=120)
        with open(os.path.join(self.datadir, "pg_hba.conf"), "w") as f:
            f.write("# pgharness: trust everything on loopback, with or without SSL\n"
                    "local all all trust\n"
                    "host  all all 127.0.0.1/32 trust\n"
                    "host  all all ::1/128 trust\n")
            if self.netns is not None:
                f.write("host  all all %s trust\n" % self.netns.subnet4)
                if self.netns.subnet6:
                    f.write("host  all all %s trust\n" % self.netns.subnet6)
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write("\ninclude_if_exists = 'pgharness.conf'\n")

    def _write_settings(self, overrides):
        s = dict(DEFAULT_SETTINGS)
        s.update({
            "port": str(self.port),
            "listen_addresses": ("%s,%s" % (self.host4, self.host6)) if self.ipv6 else self.host4,
            "unix_socket_directories": self.sockdir,
            "ssl_cert_file": self.certs["server_cert"],
            "ssl_key_file": self.certs["server_key"],
            "ssl_ca_file": self.certs["ca_cert"],
        })
        s.update({k: str(v) for k, v in overrides.items()})
        with open(os.path.join(self.datadir, "pgharness.conf"), "w") as f:
            for k, v in s.items():
                f.write("%s = '%s'\n" % (k, v.replace("'", "''")))
        self.settings = s

    def start(self, **overrides):
        """Start with DEFAULT_SETTINGS + overrides (e.g. ssl='off',
        ssl_min_protocol_version='TLSv1.2'); returns once it accepts connections."""
        if self.running:
            raise HarnessError("server already running")
        self._write_settings(overrides)
        log_start = len(self.log_text())
        self.running = True  # from here on, close() must try to stop it
        try:
            self._as_pg([os.path.join(PG_BIN, "pg_ctl"), "-D", self.datadir, "-l", self.logfile,
                         "-w", "-t", "30", "start"], timeout=60)
        except HarnessError as e:
            self.stop(mode="immediate")
            new_log = self.log_text()[log_start:]
            if "could not bind" in new_log:
                raise PortTaken("port %d is taken" % self.port) from e
            raise HarnessError("%s\n%s" % (e, new_log[-2000:])) from e
        # postgres starts when at least one listen address binds: demand all of them.
        if "could not bind" in self.log_text()[log_start:]:
            self.stop(mode="immediate")
            raise PortTaken("port %d is taken on a loopback address" % self.port)
        self.query("select 1")  # over the Unix socket: no traffic on the captured port
        return self

    def stop(self, mode="fast"):
        if not self.running:
            return
        self._as_pg([os.path.join(PG_BIN, "pg_ctl"), "-D", self.datadir, "-m", mode, "-w",
                     "-t", "30", "stop"], check=False, timeout=60)
        self.running = False

    def restart(self, **overrides):
        """Stop, then start with DEFAULT_SETTINGS + these overrides (not cumulative)."""
        self.stop()
        return self.start(**overrides)

    def query(self, sql):
        """Run SQL over the Unix socket (nothing on the wire); returns psql -At output."""
        res = run([os.path.join(PG_BIN, "psql"), "-XAt", "-h", self.sockdir, "-p", str(self.port),
                   "-U", PG_USER, "-d", "postgres", "-c", sql], timeout=30)
        return res.stdout.decode().strip()

    def log_text(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def close(self):
        _unregister(self)
        self.stop(mode="fast")

    def __repr__(self):
        return "PgServer(port=%d, running=%s)" % (self.port, self.running)


# ---------------------------------------------------------------------------------------------
# tcpdump

class Tcpdump:
    """tcpdump -i lo on one TCP port into a pcap. start() returns once tcpdump says it is
    listening; stop() lets in-flight packets arrive, sends SIGINT and waits for the flush."""

    def __init__(self, pcap, port, iface="lo", snaplen=0, extra_filter=None, pidfile=None,
                 netns_prefix=(), buffer_kib=None):
        self.pcap, self.port, self.iface = pcap, port, iface
        self.buffer_kib = buffer_kib  # tcpdump -B: a bigger kernel buffer on a busy machine
        self.netns_prefix = list(netns_prefix)  # e.g. ["ip", "netns", "exec", NS]
        self.snaplen = snaplen
        self.filter = "tcp port %d" % port + (" and (%s)" % extra_filter if extra_filter else "")
        self.pidfile = pidfile
        self.proc = None
        self.stderr_lines = []
        self.stats = {}
        self._listening = threading.Event()

    def start(self, timeout=10):
        cmd = self.netns_prefix + ["tcpdump", "-i", self.iface, "-n", "-U", "--immediate-mode", "-Z", "root",
               "-w", self.pcap]
        if self.snaplen:
            cmd += ["-s", str(self.snaplen)]
        if self.buffer_kib:
            cmd += ["-B", str(self.buffer_kib)]
        cmd.append(self.filter)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        _register(self)
        if self.pidfile:
            with open(self.pidfile, "w") as f:
                f.write(str(self.proc.pid))
        threading.Thread(target=self._read_stderr, daemon=True).start()
        if not self._listening.wait(timeout) or self.proc.poll() is not None:
            err = "".join(self.stderr_lines)
            self.close()
            raise HarnessError("tcpdump did not start listening: %s" % err.strip())
        return self

    def _read_stderr(self):
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace")
            self.stderr_lines.append(line)
            if "listening on" in line:
                self._listening.set()
        self._listening.set()

    def stop(self, settle=0.3, timeout=15):
        """Returns {'captured': n, 'received': n, 'dropped': n}."""
        if self.proc is None:
            return self.stats
        time.sleep(settle)  # the last FIN/ACKs of the clients
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        deadline = time.time() + 2
        while time.time() < deadline and not any("captured" in l for l in self.stderr_lines):
            time.sleep(0.02)
        text = "".join(self.stderr_lines)
        for key, pat in (("captured", r"(\d+) packets? captured"),
                         ("received", r"(\d+) packets? received by filter"),
                         ("dropped", r"(\d+) packets? dropped by kernel")):
            m = re.search(pat, text)
            if m:
                self.stats[key] = int(m.group(1))
        self.proc = None
        _unregister(self)
        if self.pidfile and os.path.exists(self.pidfile):
            os.unlink(self.pidfile)
        if self.stats.get("dropped"):
            raise HarnessError("tcpdump dropped %d packets" % self.stats["dropped"])
        return self.stats

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        _unregister(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, *_):
        if exc_type is None:
            self.stop()
        else:
            self.close()

    def __repr__(self):
        return "Tcpdump(%s, port %d)" % (self.pcap, self.port)


def pcap_syns(path, server_port):
    """[(client_ip, client_port, server_ip, ts)] for every SYN (without ACK) sent to
    server_port, in capture order. Reads classic pcap with Ethernet, Linux SLL/SLL2, NULL or
    raw IP link types."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return []
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        raise HarnessError("%s: not a classic pcap file" % path)
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(end + "I", data[20:24])[0] & 0x0fffffff
    off, out = 24, []
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(end + "IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        ts = sec + frac / (1e9 if nano else 1e6)
        if linktype == 1:  # Ethernet
            etype, l3 = struct.unpack(">H", pkt[12:14])[0], 14
            while etype in (0x8100, 0x88a8) and len(pkt) >= l3 + 4:
                etype, l3 = struct.unpack(">H", pkt[l3 + 2:l3 + 4])[0], l3 + 4
        elif linktype == 113:  # Linux cooked
            etype, l3 = struct.unpack(">H", pkt[14:16])[0], 16
        elif linktype == 276:  # Linux cooked v2
            etype, l3 = struct.unpack(">H", pkt[0:2])[0], 20
        elif linktype in (0, 108):  # NULL/LOOP
            fam = struct.unpack(("<" if linktype == 0 else ">") + "I", pkt[0:4])[0]
            etype, l3 = (0x0800 if fam == 2 else 0x86dd), 4
        elif linktype in (101, 12):  # raw IP
            etype, l3 = (0x0800 if pkt[0] >> 4 == 4 else 0x86dd), 0
        else:
            raise HarnessError("%s: link type %d not supported" % (path, linktype))
        if etype == 0x0800 and len(pkt) >= l3 + 20:
            ihl = (pkt[l3] & 0x0f) * 4
            if pkt[l3 + 9] != 6:
                continue
            src, dst = ipaddress.ip_address(pkt[l3 + 12:l3 + 16]), ipaddress.ip_address(pkt[l3 + 16:l3 + 20])
            l4 = l3 + ihl
        elif etype == 0x86dd and len(pkt) >= l3 + 40:
            if pkt[l3 + 6] != 6:
                continue
            src, dst = ipaddress.ip_address(pkt[l3 + 8:l3 + 24]), ipaddress.ip_address(pkt[l3 + 24:l3 + 40])
            l4 = l3 + 40
        else:
            continue
        if len(pkt) < l4 + 14:
            continue
        sport, dport = struct.unpack(">HH", pkt[l4:l4 + 4])
        flags = pkt[l4 + 13]
        if dport == server_port and flags & 0x02 and not flags & 0x10:
            out.append((str(src), sport, str(dst), ts))
    return out


# ---------------------------------------------------------------------------------------------
# Network namespaces (optional): server and clients on two sides of a veth pair

NETNS_PREFIX = "pgh-"
_NETNS_RE = re.compile(r"^pgh-(\d+)-(\d+)-(srv|cli)$")
_netns_count = 0


def reap_stale_netns():
    """Delete namespaces left by NetnsPair owners that no longer exist (the veth pair goes
    with them)."""
    res = run(["ip", "netns", "list"], check=False)
    for line in res.stdout.decode(errors="replace").splitlines():
        name = line.split()[0] if line.split() else ""
        m = _NETNS_RE.match(name)
        if m and not _pid_alive(int(m.group(1))):
            _kill_netns_pids(name)
            run(["ip", "netns", "del", name], check=False)
            log("removed stale network namespace %s" % name)


def _kill_netns_pids(name):
    """Stop what a killed run left running in its namespace (monitors, postgres, tcpdump):
    SIGTERM, then SIGKILL after 3 s. Only processes of that namespace, by pid."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = run(["ip", "netns", "pids", name], check=False).stdout.decode().split()
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(int(pid), sig)
            except (OSError, ValueError):
                pass
        deadline = time.time() + 3
        while time.time() < deadline and run(["ip", "netns", "pids", name], check=False).stdout.strip():
            time.sleep(0.1)


class NetnsPair:
    """Two network namespaces joined by a veth pair: `server` (server_veth, 10.201.0.1/24,
    fd00:201::1/64) and `client` (client_veth, .2 / ::2). Names are unique per process and
    call (pgh-<pid>-<n>-srv/cli); close() deletes both namespaces (and so the veth pair and
    anything attached to it), and the next NetnsPair() reaps those of dead owners.

        with ph.NetnsPair() as ns, ph.Harness(netns=ns) as h:
            h.start_server()                   # postgres in ns.server_ns on 10.201.0.1
            h.psql("tls13")                    # psql in ns.client_ns
            run(ns.exec_prefix("server") + ["pgtlsmon", "watch", "-i", ns.server_veth, ...])
    """

    def __init__(self, ipv6=True, gro=True):
        global _netns_count
        reap_stale_netns()
        _netns_count += 1
        tag = "%d-%d" % (os.getpid(), _netns_count)
        self.server_ns = NETNS_PREFIX + tag + "-srv"
        self.client_ns = NETNS_PREFIX + tag + "-cli"
        short = "%x%x" % (os.getpid(), _netns_count)  # interface names: at most 15 bytes
        self.server_veth = ("pgs" + short)[:15]
        self.client_veth = ("pgc" + short)[:15]
        self.subnet4, self.server_ip4, self.client_ip4 = "10.201.0.0/24", "10.201.0.1", "10.201.0.2"
        if ipv6:
            self.subnet6, self.server_ip6, self.client_ip6 = "fd00:201::/64", "fd00:201::1", "fd00:201::2"
        else:
            self.subnet6 = self.server_ip6 = self.client_ip6 = None
        self.created = []
        _register(self)
        try:
            self._create(gro)
        except Exception:
            self.close()
            raise

    def _create(self, gro):
        for ns in (self.server_ns, self.client_ns):
            run(["ip", "netns", "add", ns])
            self.created.append(ns)
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "link", "add", self.server_veth, "netns", self.server_ns, "type", "veth",
             "peer", "name", self.client_veth, "netns", self.client_ns])
        for ns, dev, ip4, ip6 in ((self.server_ns, self.server_veth, self.server_ip4, self.server_ip6),
                                  (self.client_ns, self.client_veth, self.client_ip4, self.client_ip6)):
            run(["ip", "-n", ns, "addr", "add", ip4 + "/24", "dev", dev])
            if ip6:
                run(["ip", "-n", ns, "addr", "add", ip6 + "/64", "dev", dev, "nodad"])
            run(["ip", "-n", ns, "link", "set", dev, "up"])
            if gro and shutil.which("ethtool"):
                # veth hands GRO super-packets up (as well as the sender's TSO ones) with GRO on.
                run(["ip", "netns", "exec", ns, "ethtool", "-K", dev, "gro", "on"], check=False)

    def exec_prefix(self, side):
        """The argv prefix that runs a command in the `server` or `client` namespace."""
        return ["ip", "netns", "exec", self.server_ns if side == "server" else self.client_ns]

    def close(self):
        _unregister(self)
        for ns in reversed(self.created):
            run(["ip", "netns", "del", ns], check=False)
        self.created = []

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()

    def __repr__(self):
        return "NetnsPair(%s, %s)" % (self.server_ns, self.client_ns)


# ---------------------------------------------------------------------------------------------
# Sessions and clients

class Session:
    """One client run and what it should look like on the wire.

    expected: outcome, tls_version, ssl_response, direct_tls, hello_retry_request, alert
              (None = not asserted), filled from the scenario, then tls_version/cipher from
              the server's view when the session reached a backend.
    server_view: pg_stat_ssl as the backend saw it ({'ssl', 'version', 'cipher', 'client_ip',
              'client_port'}) or None when no backend ran a query for this connection.
    """

    def __init__(self, name, tool, host, server_port, expected, connections=1, client_ip=None):
        self.name, self.tool, self.host = name, tool, host
        self.server_ip = str(ipaddress.ip_address(host))
        # loopback: same address on both ends; between namespaces, the client's veth address
        self.client_ip = str(ipaddress.ip_address(client_ip)) if client_ip else self.server_ip
        self.server_port = server_port
        self.expected = dict(expected)
        self.connections = connections
        self.server_view = None
        self.client_port = None
        self.returncode = None
        self.stdout = self.stderr = ""
        self.cmd = None

    @property
    def client(self):
        return (self.client_ip, self.client_port)

    def set_server_view(self, ssl, version, cipher, client_ip, client_port):
        self.server_view = {"ssl": ssl, "version": version or None, "cipher": cipher or None,
                            "client_ip": str(ipaddress.ip_address(client_ip)),
                            "client_port": int(client_port)}
        self.client_port = int(client_port)
        self.expected["tls_version"] = self.server_view["version"]
        self.expected.update(cipher_facts(self.server_view["cipher"]))

    def truth(self):
        """The .pgstat.jsonl line for this session."""
        exp = dict(self.expected)
        exp.setdefault("tls_version", None)
        for k, v in cipher_facts(None).items():
            exp.setdefault(k, v)
        return {"name": self.name, "tool": self.tool,
                "client": {"ip": self.client_ip, "port": self.client_port},
                "server": {"ip": self.server_ip, "port": self.server_port},
                "reached_backend": self.server_view is not None,
                "pg_stat_ssl": (None if self.server_view is None else
                                {k: self.server_view[k] for k in ("ssl", "version", "cipher")}),
                "expected": exp}

    def __repr__(self):
        return "Session(%s, port=%s, rc=%s)" % (self.name, self.client_port, self.returncode)


# One query gives the server's view of the connection; it works with and without SSL.
VIEW_SQL = ("select 'PGH|' || ssl || '|' || coalesce(version, '') || '|' || coalesce(cipher, '') "
            "|| '|' || host(inet_client_addr()) || '|' || inet_client_port() || '|END' "
            "from pg_stat_ssl where pid = pg_backend_pid()")
VIEW_RE = re.compile(rb"PGH\|(true|false)\|([^|]*)\|([^|]*)\|([^|]*)\|(\d+)\|END")


def _parse_view(session, blob):
    m = VIEW_RE.search(blob if isinstance(blob, bytes) else blob.encode())
    if m:
        g = [x.decode() for x in m.groups()]
        session.set_server_view(g[0] == "true", g[1], g[2], g[3], g[4])
    return m is not None


def pg_startup_message(user="postgres", database="postgres", application_name=None):
    params = [("user", user), ("database", database)]
    if application_name:
        params.append(("application_name", application_name))
    body = struct.pack(">I", 196608) + b"".join(k.encode() + b"\0" + v.encode() + b"\0"
                                                 for k, v in params) + b"\0"
    return struct.pack(">I", len(body) + 4) + body


def pg_query_message(sql):
    body = sql.encode() + b"\0"
    return b"Q" + struct.pack(">I", len(body) + 4) + body


PG_TERMINATE = b"X\0\0\0\4"

LEGACY_OPENSSL_CONF = """\
# pgharness: OpenSSL 3 refuses TLS < 1.2 at security level >= 1; libpq has no cipher option.
openssl_conf = pgharness_conf
[pgharness_conf]
ssl_conf = pgharness_ssl
[pgharness_ssl]
system_default = pgharness_tls
[pgharness_tls]
CipherString = DEFAULT:@SECLEVEL=0
"""


class Harness:
    """Owns a temp dir (postgres-owned), the certificates, at most one server, the captures
    and the sessions run so far. Use as a context manager; close() is also run at exit."""

    def __init__(self, keep=False, port=None, netns=None):
        """netns: a NetnsPair (optional). The server then runs in its server namespace on the
        veth address, clients run in the client namespace, and capture() listens on the
        server's veth. Without it everything is on loopback, as before."""
        if missing_requirements():
            raise HarnessError("; ".join(missing_requirements()))
        reap_stale()
        self.keep = keep
        self.root = tempfile.mkdtemp(prefix=TMP_PREFIX)
        os.chmod(self.root, 0o755)
        with open(os.path.join(self.root, "owner.pid"), "w") as f:
            f.write(str(os.getpid()))
        self.pgdir = os.path.join(self.root, "pg")
        os.makedirs(self.pgdir)
        self.home = os.path.join(self.root, "home")  # HOME for clients: no ~/.postgresql, ~/.psqlrc
        os.makedirs(self.home)
        self.certs = make_certs(self.pgdir)
        self.legacy_conf = os.path.join(self.root, "openssl-seclevel0.cnf")
        with open(self.legacy_conf, "w") as f:
            f.write(LEGACY_OPENSSL_CONF)
        for dirpath, _dirs, files in os.walk(self.pgdir):
            shutil.chown(dirpath, PG_USER, PG_USER)
            for fn in files:
                shutil.chown(os.path.join(dirpath, fn), PG_USER, PG_USER)
        self.port = port
        self.netns = netns
        self.server = None
        self.sessions = []
        self._capture_start = 0
        _register(self)

    # -- server ---------------------------------------------------------------------------
    def start_server(self, **settings):
        """Start (initdb on first use) the server: DEFAULT_SETTINGS + settings. The port is
        the Harness(port=...) one if free, else any free one; a port taken between the probe
        and the bind is retried with another."""
        if self.server is None:
            self.server = PgServer(self.pgdir, self.certs, port=free_port(self.port),
                                   netns=self.netns)
        for attempt in range(3):
            try:
                return self.server.start(**settings)
            except PortTaken:
                if attempt == 2:
                    raise
                self.server.port = free_port()
                log("port taken, retrying on %d" % self.server.port)

    # -- capture --------------------------------------------------------------------------
    def capture(self, pcap, snaplen=0):
        """Context manager: tcpdump on the server's port for the sessions run inside it; on
        exit assigns client ports from the capture's SYNs to the sessions started inside."""
        harness = self

        class _Capture(Tcpdump):
            def start(self, timeout=10):
                harness._capture_start = len(harness.sessions)
                return Tcpdump.start(self, timeout)

            def stop(self, settle=0.3, timeout=15):
                stats = Tcpdump.stop(self, settle, timeout)
                harness.assign_ports(self.pcap, harness.sessions[harness._capture_start:])
                return stats

        if self.server is None:
            raise HarnessError("start_server() first")
        if self.netns is not None:
            return _Capture(pcap, self.server.port, snaplen=snaplen, iface=self.netns.server_veth,
                            netns_prefix=self.netns.exec_prefix("server"),
                            pidfile=os.path.join(self.root, "tcpdump.pid"))
        return _Capture(pcap, self.server.port, snaplen=snaplen,
                        pidfile=os.path.join(self.root, "tcpdump.pid"))

    def assign_ports(self, pcap, sessions):
        """Give each session the client port of its SYN (sessions ran one after the other),
        and check it against the port the server reported where there is one."""
        syns = pcap_syns(pcap, self.server.port)
        want = sum(s.connections for s in sessions)
        if len(syns) != want:
            raise HarnessError("%s: %d connections captured, %d expected (%s)" % (
                pcap, len(syns), want, ", ".join(s.name for s in sessions)))
        i = 0
        for s in sessions:
            ip, port, _dst, _ts = syns[i]
            i += s.connections
            if ip != s.client_ip:
                raise HarnessError("%s: SYN from %s, expected %s" % (s.name, ip, s.client_ip))
            if s.client_port is not None and s.client_port != port:
                raise HarnessError("%s: server saw client port %d, capture %d" % (
                    s.name, s.client_port, port))
            s.client_port = port

    # -- clients --------------------------------------------------------------------------
    def _env(self, legacy=False, extra=None):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.home, "LANG": "C",
               "PGCONNECT_TIMEOUT": "10"}
        if legacy:
            env["OPENSSL_CONF"] = self.legacy_conf
        env.update(extra or {})
        return env

    def _finish(self, s, res, cmd):
        s.cmd, s.returncode = cmd, res.returncode
        s.stdout = res.stdout.decode(errors="replace")
        s.stderr = res.stderr.decode(errors="replace")
        _parse_view(s, res.stdout)
        self.sessions.append(s)
        exp = s.expected
        reached = exp["outcome"] in ("tls", "plaintext")
        if reached and s.server_view is None:
            raise HarnessError("%s: no pg_stat_ssl view (rc %d): %s" % (s.name, s.returncode, s.stderr.strip()))
        if not reached and s.server_view is not None:
            raise HarnessError("%s: expected %s but the session reached a backend" % (s.name, exp["outcome"]))
        if s.server_view and s.server_view["ssl"] != (exp["outcome"] == "tls"):
            raise HarnessError("%s: expected %s but pg_stat_ssl.ssl is %s" % (
                s.name, exp["outcome"], s.server_view["ssl"]))
        want = exp.get("want_version")
        if want and s.server_view and s.server_view["version"] != want:
            raise HarnessError("%s: asked for %s, server negotiated %s" % (
                s.name, want, s.server_view["version"]))
        exp.pop("want_version", None)
        log("%-28s %-10s %s" % (s.name, exp["outcome"], s.server_view or s.stderr.strip().splitlines()[-1:]))
        return s

    def _host(self, ipv6):
        if self.server is None or not self.server.running:
            raise HarnessError("server not running")
        if ipv6 and not self.server.ipv6:
            raise HarnessError("no IPv6 loopback")
        return self.server.host6 if ipv6 else self.server.host4

    def _client_ip(self, ipv6):
        if self.netns is None:
            return None  # loopback: the server's address
        return self.netns.client_ip6 if ipv6 else self.netns.client_ip4

    def _client_run(self, cmd, **kw):
        prefix = self.netns.exec_prefix("client") if self.netns is not None else []
        return run(prefix + cmd, **kw)

    def psql(self, name, *, sslmode="require", tls_version=None, min_version=None,
             max_version=None, ipv6=False, sni=False, legacy_ciphers=None, expect_outcome=None,
             expect_hrr=None, expect_alert=None, application_name=None, extra_conninfo=""):
        """psql/libpq: one connection. tls_version='TLSv1.x' pins min=max to it (legacy
        versions also get the SECLEVEL=0 OPENSSL_CONF). sni=True connects with
        host=localhost hostaddr=<ip> so libpq sends SNI. Expected outcome defaults to
        'plaintext' for sslmode=disable, else 'tls'."""
        host = self._host(ipv6)
        min_version = min_version or tls_version
        max_version = max_version or tls_version
        if legacy_ciphers is None:
            legacy_ciphers = min_version in LEGACY_VERSIONS or max_version in LEGACY_VERSIONS
        conn = ["host=localhost hostaddr=%s" % host if sni else "host=%s" % host,
                "port=%d" % self.server.port, "user=postgres", "dbname=postgres",
                "sslmode=%s" % sslmode, "gssencmode=disable", "connect_timeout=10",
                "application_name=%s" % (application_name or "pgharness-" + name)]
        if min_version:
            conn.append("ssl_min_protocol_version=%s" % min_version)
        if max_version:
            conn.append("ssl_max_protocol_version=%s" % max_version)
        if extra_conninfo:
            conn.append(extra_conninfo)
        ssl_on = self.server.settings.get("ssl") == "on"
        outcome = expect_outcome or (
            "plaintext" if sslmode == "disable" or (sslmode in ("allow", "prefer") and not ssl_on)
            else "tls")
        expected = {"outcome": outcome,
                    "ssl_response": None if sslmode == "disable" else
                    ("S" if ssl_on else "N"),
                    "direct_tls": False, "hello_retry_request": expect_hrr, "alert": expect_alert}
        if outcome == "tls" and tls_version:
            expected["want_version"] = tls_version
        s = Session(name, "psql", host, self.server.port, expected, client_ip=self._client_ip(ipv6))
        cmd = [os.path.join(PG_BIN, "psql"), "-XAt", " ".join(conn), "-c", VIEW_SQL]
        res = self._client_run(cmd, check=False, timeout=30, env=self._env(legacy_ciphers))
        return self._finish(s, res, cmd)

    def s_client_starttls(self, name, *, tls_version=None, cipher="DEFAULT@SECLEVEL=0",
                          ipv6=False, query=True, expect_outcome="tls", expect_hrr=None,
                          expect_alert=None, extra_args=()):
        """openssl s_client -starttls postgres [-tls1|-tls1_1|...]; when the handshake
        succeeds it sends a StartupMessage, the pg_stat_ssl query and Terminate over TLS so
        the server's view is recorded."""
        host = self._host(ipv6)
        target = "[%s]:%d" % (host, self.server.port) if ipv6 else "%s:%d" % (host, self.server.port)
        cmd = ["openssl", "s_client", "-starttls", "postgres", "-connect", target, "-quiet"]
        if tls_version:
            cmd.append(VERSION_FLAGS[tls_version])
        if cipher:
            cmd += ["-cipher", cipher]
        cmd += list(extra_args)
        payload = b""
        if query and expect_outcome == "tls":
            payload = (pg_startup_message(application_name="pgharness-" + name)
                       + pg_query_message(VIEW_SQL) + PG_TERMINATE)
        expected = {"outcome": expect_outcome,
                    "ssl_response": "S" if self.server.settings.get("ssl") == "on" else "N",
                    "direct_tls": False, "hello_retry_request": expect_hrr, "alert": expect_alert}
        if expect_outcome == "tls" and tls_version:
            expected["want_version"] = tls_version
        s = Session(name, "s_client", host, self.server.port, expected,
                    client_ip=self._client_ip(ipv6))
        res = self._client_run(cmd, check=False, timeout=30, input=payload, env=self._env())
        if expect_outcome == "tls" and not query:
            expected["tls_version"] = tls_version
        return self._finish(s, res, cmd)

    def s_client_direct(self, name, *, ipv6=False, alpn="postgresql", servername=None,
                        expect_alert=None, extra_args=()):
        """A direct-TLS connection (PostgreSQL 17 sslnegotiation=direct style): ClientHello
        first, no SSLRequest. PostgreSQL 15 reads it as a bad startup packet and closes."""
        host = self._host(ipv6)
        target = "[%s]:%d" % (host, self.server.port) if ipv6 else "%s:%d" % (host, self.server.port)
        cmd = ["openssl", "s_client", "-connect", target, "-quiet"]
        if alpn:
            cmd += ["-alpn", alpn]
        if servername:
            cmd += ["-servername", servername]
        cmd += list(extra_args)
        expected = {"outcome": "tls_failed", "ssl_response": None, "direct_tls": True,
                    "hello_retry_request": None, "alert": expect_alert}
        s = Session(name, "s_client-direct", host, self.server.port, expected,
                    client_ip=self._client_ip(ipv6))
        res = self._client_run(cmd, check=False, timeout=30, input=b"", env=self._env())
        return self._finish(s, res, cmd)

    # -- truth ----------------------------------------------------------------------------
    def write_pgstat(self, path, sessions=None):
        """Write one truth line per session (default: all so far) to `path`."""
        sessions = self.sessions if sessions is None else sessions
        with open(path, "w") as f:
            for s in sessions:
                if s.client_port is None:
                    raise HarnessError("%s: client port unknown (not captured?)" % s.name)
                f.write(json.dumps(s.truth()) + "\n")
        return path

    def close(self):
        _unregister(self)
        try:
            if self.server is not None:
                self.server.close()
        finally:
            if self.keep:
                log("kept %s" % self.root)
            else:
                shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()
