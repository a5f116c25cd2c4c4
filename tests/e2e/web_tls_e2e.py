#!/usr/bin/python3
"""--web.config.file end to end (tests/e2e/README.md): a real Prometheus scraping pgtlsmon over
HTTPS with basic auth, then with client certificates (mTLS) after a SIGHUP reload, then a bad
file on reload (kept out, counted). Checked with curl and openssl s_client on the way: a wrong
password gets 401, plain HTTP to the TLS port gets no HTTP answer, a TLS 1.1 client is refused
when min_version is TLS12, a certificate from another CA gets 403. A bad file at start exits 2
naming the key. Certificates are made here with openssl; bcrypt hashes with Python's crypt
(libxcrypt). Root (libpcap on lo), prometheus, curl, openssl; 77 = skipped.

    web_tls_e2e.py --pgtlsmon build/pgtlsmon
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import watchlib as wl  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # noqa: E402  (deprecated in 3.11, present in Debian 12's 3.11)

PASSWORD = "correct horse"


def sh(*cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)


def make_pki(d):
    """A CA, a server certificate for 127.0.0.1, a client certificate from the CA and one from
    another (rogue) CA."""
    def req(name, subj, signer=None, ext=None):
        key, crt = os.path.join(d, name + ".key"), os.path.join(d, name + ".crt")
        if signer is None:
            sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
               "-nodes", "-days", "2", "-subj", subj, "-keyout", key, "-out", crt,
               check=True)
        else:
            csr = os.path.join(d, name + ".csr")
            sh("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
               "-nodes", "-subj", subj, "-keyout", key, "-out", csr, check=True)
            extfile = os.path.join(d, name + ".ext")
            with open(extfile, "w") as f:
                f.write(ext or "")
            sh("openssl", "x509", "-req", "-in", csr, "-CA", signer + ".crt", "-CAkey",
               signer + ".key", "-CAcreateserial", "-days", "2", "-out", crt,
               "-extfile", extfile, check=True)
        return key, crt
    req("ca", "/CN=pgtlsmon test CA")
    req("rogue-ca", "/CN=someone else")
    req("server", "/CN=localhost", os.path.join(d, "ca"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    req("client", "/CN=prometheus", os.path.join(d, "ca"),
        "subjectAltName=DNS:prometheus.example\nextendedKeyUsage=clientAuth\n")
    req("rogue", "/CN=prometheus", os.path.join(d, "rogue-ca"),
        "subjectAltName=DNS:prometheus.example\nextendedKeyUsage=clientAuth\n")


def curl(url, d, *extra):
    """(exit code, HTTP status) of a curl GET."""
    r = sh("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
           "--cacert", os.path.join(d, "ca.crt"), *extra, url)
    return r.returncode, int(r.stdout or 0)


def s_client(port, *args):
    """openssl s_client handshake: (ok, protocol)."""
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, *args],
                       input="", capture_output=True, text=True, timeout=20)
    m = re.search(r"Protocol\s*:\s*(\S+)", r.stdout)
    proto = m.group(1) if m else ""
    ok = r.returncode == 0 and "BEGIN CERTIFICATE" in r.stdout
    return ok, proto, (r.stdout + r.stderr)[-600:]


class Prom(wl._Proc):
    def __init__(self, jobs, workdir):
        self.workdir = tempfile.mkdtemp(prefix="pgtlsmon-prom-", dir=workdir)
        self.port = wl.free_port()
        cfg = os.path.join(self.workdir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n")
            f.write(jobs)
        super().__init__([wl.PROMETHEUS, "--config.file", cfg,
                          "--storage.tsdb.path", os.path.join(self.workdir, "data"),
                          "--web.listen-address", "127.0.0.1:%d" % self.port,
                          "--log.level", "warn"], "prometheus")
        self.url = "http://127.0.0.1:%d" % self.port

    def up(self, job):
        try:
            res = wl.Prometheus.query(self, 'up{job="%s"}' % job)
        except wl.WatchError:
            return None
        return res[0][1] if res else None

    def wait_up(self, job, want, timeout=30):
        deadline = time.time() + timeout
        got = None
        while time.time() < deadline:
            got = self.up(job)
            if got == want:
                return True
            time.sleep(0.3)
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pgtlsmon", required=True)
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("SKIP: needs root (libpcap on lo)")
        return 77
    for tool in ("curl", "openssl", wl.PROMETHEUS):
        if not shutil.which(tool):
            print("SKIP: %s not found" % tool)
            return 77
    failures = []

    def check(cond, what):
        print(("ok   " if cond else "FAIL ") + what)
        if not cond:
            failures.append(what)

    d = tempfile.mkdtemp(prefix="pgtlsmon-webtls-")
    procs = []
    try:
        make_pki(d)
        h = crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 6))
        cfg = os.path.join(d, "web.yml")

        # A bad file at start: exit 2, naming the key.
        with open(cfg, "w") as f:
            f.write("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                    "  min_versoin: TLS12\n")
        r = sh(a.pgtlsmon, "watch", "--interface", "lo", "--capture", "pcap",
               "--listen", "127.0.0.1:0", "--web.config.file", cfg)
        check(r.returncode == 2 and "tls_server_config.min_versoin" in r.stderr,
              "bad web config at start: exit %d, %r" % (r.returncode, r.stderr.strip()))

        # The control for the TLS 1.1 check below: with min_version TLS10 the same client
        # gets through (so its refusal later is pgtlsmon's doing, not the client's).
        with open(cfg, "w") as f:
            f.write("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                    "  min_version: TLS10\n")
        port10 = wl.free_port()
        w10 = wl._Proc([a.pgtlsmon, "watch", "--interface", "lo", "--capture", "pcap",
                        "--ports", str(wl.free_port()), "--listen", "127.0.0.1:%d" % port10,
                        "--web.config.file", cfg], "pgtlsmon-watch")
        procs.append(w10)
        if w10.wait_stderr(r"serving .* \(HTTPS\)", 20):
            ok, proto, out = s_client(port10, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
            check(ok and proto == "TLSv1.1", "control: TLS 1.1 accepted with min_version TLS10")
        else:
            check(False, "control daemon started: " + w10.stderr_text()[-300:])
        w10.stop()

        # Phase 1: HTTPS + basic auth, min_version TLS12.
        with open(cfg, "w") as f:
            f.write("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                    "  min_version: TLS12\n"
                    "basic_auth_users:\n  prometheus: '%s'\n"
                    "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n" % h)
        port = wl.free_port()
        w = wl._Proc([a.pgtlsmon, "watch", "--interface", "lo", "--capture", "pcap",
                      "--ports", str(wl.free_port()), "--listen", "127.0.0.1:%d" % port,
                      "--web.config.file", cfg], "pgtlsmon-watch")
        procs.append(w)
        check(w.wait_stderr(r"serving .* \(HTTPS\)", 20), "daemon serves HTTPS: " +
              w.stderr_text().strip()[-300:])
        url = "https://127.0.0.1:%d/metrics" % port
        check(curl(url, d, "-u", "prometheus:" + PASSWORD) == (0, 200), "right password: 200")
        check(curl(url, d, "-u", "prometheus:wrong")[1] == 401, "wrong password: 401")
        check(curl(url, d)[1] == 401, "no password: 401")
        check(curl("https://127.0.0.1:%d/healthz" % port, d) == (0, 200),
              "/healthz without a password: 200")
        rc, status = curl("http://127.0.0.1:%d/metrics" % port, d)
        check(status == 0 and rc != 0, "plain HTTP to the TLS port: no HTTP answer (curl %d)" % rc)
        ok, proto, out = s_client(port, "-tls1_2", "-CAfile", os.path.join(d, "ca.crt"))
        check(ok and proto == "TLSv1.2", "TLS 1.2 client accepted (%s)" % proto)
        ok, proto, out = s_client(port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
        check(not ok, "TLS 1.1 client refused with min_version TLS12: %s" %
              out.strip().splitlines()[-1:])
        r = sh("curl", "-s", "-D-", "-o", "/dev/null", "--cacert", os.path.join(d, "ca.crt"),
               "-u", "prometheus:" + PASSWORD, url)
        check("X-Content-Type-Options: nosniff" in r.stdout, "configured header sent")

        jobs = ("  - job_name: basic\n    scheme: https\n"
                "    tls_config:\n      ca_file: %(d)s/ca.crt\n"
                "    basic_auth:\n      username: prometheus\n      password: '%(pw)s'\n"
                "    static_configs:\n      - targets: ['127.0.0.1:%(port)d']\n"
                "  - job_name: mtls\n    scheme: https\n"
                "    tls_config:\n      ca_file: %(d)s/ca.crt\n"
                "      cert_file: %(d)s/client.crt\n      key_file: %(d)s/client.key\n"
                "    static_configs:\n      - targets: ['127.0.0.1:%(port)d']\n"
                % {"d": d, "pw": PASSWORD, "port": port})
        prom = Prom(jobs, d)
        procs.append(prom)
        check(prom.wait_up("basic", 1), "Prometheus over HTTPS + basic auth: up == 1")
        check(prom.wait_up("mtls", 0), "Prometheus with a client certificate but no password: up == 0")

        # Phase 2: SIGHUP to client certificates (mTLS) only.
        with open(cfg, "w") as f:
            f.write("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                    "  client_auth_type: RequireAndVerifyClientCert\n"
                    "  client_ca_file: ca.crt\n"
                    "  client_allowed_sans: [prometheus.example]\n")
        pid = w.pid
        w.proc.send_signal(signal.SIGHUP)
        check(w.wait_stderr(r"reloaded --web.config.file", 10), "reload logged")
        check(prom.wait_up("mtls", 1), "Prometheus with a client certificate: up == 1")
        check(prom.wait_up("basic", 0), "Prometheus with only a password after the reload: up == 0")
        cert = ["--cert", os.path.join(d, "client.crt"), "--key", os.path.join(d, "client.key")]
        rogue = ["--cert", os.path.join(d, "rogue.crt"), "--key", os.path.join(d, "rogue.key")]
        check(curl(url, d, *cert) == (0, 200), "curl with the client certificate: 200")
        check(curl(url, d)[1] in (0, 403), "curl without a client certificate: refused")
        check(curl(url, d, *rogue)[1] in (0, 403), "curl with another CA's certificate: refused")
        check(w.alive() and w.pid == pid, "same process, capture not restarted")

        # Phase 3: a bad file on reload keeps the mTLS configuration, and says so.
        with open(cfg, "w") as f:
            f.write("tls_server_config:\n  cert_file: server.crt\n  key_file: missing.key\n")
        w.proc.send_signal(signal.SIGHUP)
        check(w.wait_stderr(r"reloading --web.config.file failed.*key_file", 10),
              "failed reload logged, naming the key")
        check(curl(url, d, *cert) == (0, 200), "old configuration still in force")
        r = sh("curl", "-s", "--cacert", os.path.join(d, "ca.crt"), *cert, url)
        samples = wl.parse_metrics(r.stdout)
        check(wl.metric_sum(samples, "pgtlsmon_web_config_reloads_total", result="failure") == 1
              and wl.metric_sum(samples, "pgtlsmon_web_config_reloads_total",
                                result="success") == 1
              and wl.metric_sum(samples, "pgtlsmon_web_config_last_reload_successful") == 0,
              "reloads counted: 1 success, 1 failure, last_reload_successful 0")
        check(prom.up("mtls") == 1, "Prometheus still scraping with mTLS")
        rc = w.stop()
        check(rc == 0, "clean stop (exit %s)" % rc)
    finally:
        for p in procs:
            p.close()
        shutil.rmtree(d, ignore_errors=True)
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
