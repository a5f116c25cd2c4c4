#!/usr/bin/env python3
"""Validate every PromQL expression of the pgtlsmon dashboard and rule files against a real
Prometheus server, and optionally check that the dashboard's panels return data.

  check_promql.py [--prometheus /usr/bin/prometheus]            # syntax/type check only
  check_promql.py --metrics-file deploy/tests/sample-metrics.prom --require-panels all
  check_promql.py --metrics-file out.prom                       # key panels must have data
  check_promql.py --target 127.0.0.1:9433                       # scrape a live pgtlsmon

A throw-away Prometheus (temp data dir, free loopback port) loads the recording and alerting
rules (evaluated every second) and, with --metrics-file, scrapes a tiny HTTP server that serves
the file as /metrics (what `pgtlsmon replay --metrics-file` writes), or with --target a live
pgtlsmon. Each expression goes through /api/v1/query; an expression Prometheus cannot parse or
type-check comes back as an error. Exit 0 when all pass, 1 on failure, 77 when Prometheus is
not installed.
"""
import argparse
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

try:
    import yaml
except ImportError:  # Debian: python3-yaml
    print("SKIP: PyYAML (python3-yaml) not installed")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
DEPLOY = os.path.dirname(HERE)
DASHBOARD = os.path.join(DEPLOY, "grafana", "pgtlsmon.json")
RULE_FILES = [os.path.join(DEPLOY, "prometheus", f)
              for f in ("pgtlsmon-recording.yml", "pgtlsmon-alerts.yml")]

# Panels that must return data for any capture with PostgreSQL TLS traffic in it.
KEY_PANELS = [
    "Sessions/s",
    "Sessions by negotiated version",
    "Sessions by outcome",
    "Sessions by server and version",
    "Cipher mix",
    "ClientHello max version",
    "Packets",
    "Build info",
]

# Grafana's variables, replaced by what the dashboard's "All" would send.
GRAFANA_VARS = {
    "$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h",
    "${__range}": "1h", "$__range_s": "3600",
    "$job": ".*", "$instance": ".*", "$server": ".*",
}


def grafana_to_promql(expr):
    for k in sorted(GRAFANA_VARS, key=len, reverse=True):
        expr = expr.replace(k, GRAFANA_VARS[k])
    m = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", expr, re.S)
    if m:  # a Grafana templating function: check its selector
        expr = m.group(1)
    if "$" in expr:
        raise ValueError(f"unsubstituted Grafana variable in {expr!r}")
    return expr


def dashboard_exprs(path):
    """[(where, title, expr)] for every panel target, variable and annotation."""
    with open(path) as f:
        dash = json.load(f)
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((f"panel {p['id']} {t['refId']}", p["title"], t["expr"]))
            walk(p.get("panels", []))
    walk(dash["panels"])
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            out.append((f"variable {v['name']}", None, q))
    for a in dash.get("annotations", {}).get("list", []):
        if a.get("expr"):
            out.append((f"annotation {a['name']}", None, a["expr"]))
    return dash, out


def rule_exprs(paths):
    out = []
    for path in paths:
        with open(path) as f:
            doc = yaml.safe_load(f)
        for g in doc["groups"]:
            for r in g["rules"]:
                name = r.get("record") or r.get("alert")
                out.append((f"{os.path.basename(path)} {name}", None, r["expr"]))
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_file(path):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            with open(path, "rb") as f:
                body = f.read()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"127.0.0.1:{srv.server_address[1]}"


class Prometheus:
    def __init__(self, binary, workdir, target):
        self.workdir = workdir
        rules = []
        for path in RULE_FILES:  # same rules, evaluated every second
            with open(path) as f:
                doc = yaml.safe_load(f)
            for g in doc["groups"]:
                g["interval"] = "1s"
            dst = os.path.join(workdir, os.path.basename(path))
            with open(dst, "w") as f:
                yaml.safe_dump(doc, f)
            rules.append(dst)
        cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                          "scrape_timeout": "1s"},
               "rule_files": rules, "scrape_configs": []}
        if target:
            cfg["scrape_configs"].append({"job_name": "pgtlsmon",
                                          "static_configs": [{"targets": [target]}]})
        with open(os.path.join(workdir, "prometheus.yml"), "w") as f:
            yaml.safe_dump(cfg, f)
        self.port = free_port()
        self.log = open(os.path.join(workdir, "prometheus.log"), "w")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={workdir}/prometheus.yml",
             f"--storage.tsdb.path={workdir}/data",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("prometheus exited: " + self.logtail())
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready",
                                            timeout=1) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.time() > deadline:
                raise RuntimeError("prometheus not ready after 30s: " + self.logtail())
            time.sleep(0.2)

    def logtail(self):
        self.log.flush()
        with open(os.path.join(self.workdir, "prometheus.log")) as f:
            return f.read()[-2000:]

    def query(self, expr):
        url = (f"http://127.0.0.1:{self.port}/api/v1/query?"
               + urllib.parse.urlencode({"query": expr}))
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:  # 400/422 carry a JSON error body
            return json.load(e)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "/usr/bin/prometheus")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--metrics-file", help="serve this Prometheus text file as the target")
    src.add_argument("--target", help="scrape this host:port (a running pgtlsmon)")
    ap.add_argument("--require-panels", default=None,
                    help="'all', or comma-separated panel titles that must return data "
                         "(default with a target: the key panels)")
    ap.add_argument("--settle", type=float, default=6.0,
                    help="seconds of scrapes and rule evaluations before checking data")
    ap.add_argument("--dashboard", default=DASHBOARD)
    args = ap.parse_args()

    if not os.access(args.prometheus, os.X_OK):
        print(f"SKIP: no Prometheus server at {args.prometheus}")
        return 77

    dash, dexprs = dashboard_exprs(args.dashboard)
    exprs = dexprs + rule_exprs(RULE_FILES)
    failures = []
    srv = None
    target = args.target
    if args.metrics_file:
        srv, target = serve_file(os.path.abspath(args.metrics_file))
    workdir = tempfile.mkdtemp(prefix="pgtlsmon-promql-")
    prom = None
    try:
        prom = Prometheus(args.prometheus, workdir, target)
        # 1. Every expression parses and type-checks.
        for where, _title, expr in exprs:
            try:
                q = grafana_to_promql(expr)
            except ValueError as e:
                failures.append(f"{where}: {e}")
                continue
            res = prom.query(q)
            if res.get("status") != "success":
                failures.append(f"{where}: {res.get('errorType')}: {res.get('error')}\n    {q}")
        print(f"checked {len(exprs)} PromQL expressions "
              f"({len(dexprs)} from the dashboard, {len(exprs) - len(dexprs)} from rules)")

        # 2. With data, the required panels return something.
        if target:
            titles = {t for _w, t, _e in dexprs if t}
            if args.require_panels in (None, ""):
                required = KEY_PANELS
            elif args.require_panels == "all":
                required = sorted(titles)
            else:
                required = [t.strip() for t in args.require_panels.split(",")]
            unknown = [t for t in required if t not in titles]
            if unknown:
                failures.append(f"no such panel(s) in the dashboard: {unknown}")
            deadline = time.time() + args.settle + 20
            time.sleep(args.settle)
            while True:
                up = prom.query('up{job="pgtlsmon"}')
                up_ok = (up.get("status") == "success" and up["data"]["result"]
                         and up["data"]["result"][0]["value"][1] == "1")
                empty = []
                for title in required:
                    got = False
                    for _w, t, e in dexprs:
                        if t != title:
                            continue
                        r = prom.query(grafana_to_promql(e))
                        if r.get("status") == "success" and r["data"]["result"]:
                            got = True
                            break
                    if not got:
                        empty.append(title)
                if up_ok and not empty:
                    break
                if time.time() > deadline:
                    if not up_ok:
                        failures.append(f"target {target} not scraped successfully: {up}")
                    failures.extend(f"panel {t!r} returned no data" for t in empty)
                    break
                time.sleep(1)
            print(f"checked {len(required)} panels for data from {target}")
    finally:
        if prom:
            prom.stop()
        if srv:
            srv.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)

    for f in failures:
        print("FAIL:", f)
    if failures:
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
