#!/usr/bin/python3
"""The container image, built and run the way a user does (CTest deploy_image, ~1-2 min).

  check_image.py BUILD_DIR

1. Builds the image with deploy/container/build-image.sh from the Debian package
   (BUILD_DIR/package/pgtlsmon_*.deb; `cpack -G DEB` first when it is missing or older than
   the binary) under a throw-away tag, and checks it: size, user 9433:9433, the OCI annotations,
   the binary's file capabilities (exactly those bpf/README.md names), no shell inside;
   `--version` and a replay of tests/data/pcaps/pg15-tls-versions.pcap from a read-only
   volume, checked against that capture's truths (tests/e2e/check_replay.py --actual).
2. Runs it with podman (runc, cgroupfs: see deploy/README.md "Container") in the server
   namespace of a test veth pair (tests/e2e/pgharness.py NetnsPair) next to a real PostgreSQL
   15, with --read-only, --cap-drop ALL and only --cap-add NET_RAW,BPF,PERFMON; real psql and
   openssl clients connect from the client namespace; /metrics is scraped inside the namespace.
   The container's process must be uid 9433 with the three capabilities in its bounding set and
   none left effective once capture runs, capture with eBPF (the file capabilities at work), and
   count every session: pgtlsmon_sessions_total by outcome and version equals what the server's
   pg_stat_ssl says, and the session log written to a volume passes check_replay's pg_stat_ssl
   check. Everything it made (container, image tag, namespaces) is removed at the end.
Exit 0 ok, 1 failure, 77 when root, podman, buildah, mmdebstrap or PostgreSQL 15 are missing.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
import check_replay  # noqa: E402
import pgharness as ph  # noqa: E402

SKIP = 77
BUILD_IMAGE = os.path.join(SRC, "deploy", "container", "build-image.sh")
CAPS = {"cap_net_raw", "cap_bpf", "cap_perfmon"}
CAP_BITS = {"cap_net_raw": 13, "cap_perfmon": 38, "cap_bpf": 39}
MAX_IMAGE_BYTES = 60 * 1024 * 1024
# podman in this sandbox: crun cannot raise rlimits nor use hybrid cgroups (deploy/README.md).
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs"]


def ulimits():
    import resource
    nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 4096)
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 4096)
    return ["--ulimit", "nofile=%d:%d" % (nofile, nofile), "--ulimit", "nproc=%d:%d" % (nproc, nproc)]


def seccomp_with_cap_bpf(path):
    """podman's default seccomp profile (Debian 12: containers-common) with bpf() allowed to
    CAP_BPF and perf_event_open() to CAP_PERFMON, as the default profiles of containerd >= 1.7
    (Kubernetes' RuntimeDefault) and Docker >= 23 do; Debian 12's still ask for CAP_SYS_ADMIN.
    Written to `path`, for `podman run --security-opt seccomp=path`."""
    with open("/usr/share/containers/seccomp.json") as f:
        prof = json.load(f)
    gated = {"bpf": "CAP_BPF", "perf_event_open": "CAP_PERFMON"}
    for rule in prof["syscalls"]:
        rule["names"] = [n for n in rule["names"] if n not in gated]
    prof["syscalls"] = [r for r in prof["syscalls"] if r["names"]]
    for name, cap in gated.items():
        for c in (cap, "CAP_SYS_ADMIN"):
            prof["syscalls"].append({"names": [name], "action": "SCMP_ACT_ALLOW",
                                     "includes": {"caps": [c]}})
    with open(path, "w") as f:
        json.dump(prof, f)
    return path


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def the_deb(build):
    binary = os.path.join(build, "pgtlsmon")
    debs = glob.glob(os.path.join(build, "package", "pgtlsmon_*.deb"))
    if not debs or os.path.getmtime(debs[0]) < os.path.getmtime(binary):
        for d in debs:
            os.remove(d)
        subprocess.run(["cpack", "-G", "DEB"], cwd=build, check=True, capture_output=True)
        debs = glob.glob(os.path.join(build, "package", "pgtlsmon_*.deb"))
    return debs[0]


def scrape(ns, port, path="/metrics"):
    res = ph.run(ns.exec_prefix("server") + ["curl", "-sf", "--max-time", "5",
                                             "http://127.0.0.1:%d%s" % (port, path)], check=False)
    return res.stdout.decode() if res.returncode == 0 else None


def samples(text, name):
    """{labels-dict-as-sorted-tuple: value} of metric `name`."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^%s\{(.*)\} (\S+)$" % re.escape(name), line)
        if m:
            labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1))))
            out[labels] = float(m.group(2))
    return out


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    build = os.path.abspath(sys.argv[1])
    if os.geteuid() != 0:
        print("SKIP: needs root (podman, network namespaces)")
        return SKIP
    for tool in ("podman", "buildah", "mmdebstrap", "runc", "cpack", "curl", "getcap"):
        if not shutil.which(tool):
            print("SKIP: %s not installed" % tool)
            return SKIP
    if ph.missing_requirements():
        print("SKIP: " + "; ".join(ph.missing_requirements()))
        return SKIP
    with open(os.path.join(build, "CMakeCache.txt")) as f:
        if re.search(r"^PGTLS_SANITIZE:STRING=.+", f.read(), re.M):
            print("SKIP: sanitizer build (the image is made from the release build's package)")
            return SKIP

    t = check_replay.Tally()
    t0 = time.time()
    deb = the_deb(build)
    version = sh(["dpkg-deb", "-f", deb, "Version"]).strip()
    ref = "localhost/pgtlsmon-test-%d:%s" % (os.getpid(), version)
    ctr = "pgtlsmon-test-%d" % os.getpid()
    work = tempfile.mkdtemp(prefix="p16img-")
    try:
        t1 = time.time()
        out = sh([BUILD_IMAGE, "--tag", ref, deb])
        t.ok(out.strip() == ref, "build-image.sh prints the reference it built: %r" % out)
        default_ref = sh([BUILD_IMAGE, "--print-ref", deb]).strip()
        t.ok(default_ref == "ghcr.io/pgtlsmon/pgtlsmon:%s" % version, "default ref " + default_ref)
        info = json.loads(sh(["podman", "image", "inspect", ref]))[0]
        size = info["Size"]
        print("image %s: %.1f MB (%d bytes), built in %.0f s" % (ref, size / 1e6, size, time.time() - t1))
        t.ok(size < MAX_IMAGE_BYTES, "image size %d < %d" % (size, MAX_IMAGE_BYTES))
        cfg = info["Config"]
        t.ok(cfg.get("User") == "9433:9433", "image user %r" % cfg.get("User"))
        t.ok(cfg.get("Entrypoint") == ["/usr/bin/pgtlsmon"], "entrypoint %r" % cfg.get("Entrypoint"))
        ann = info.get("Annotations") or {}
        for key in ("title", "description", "version", "created", "source", "url", "vendor"):
            t.ok(ann.get("org.opencontainers.image." + key), "annotation org.opencontainers.image." + key)
            t.ok(cfg.get("Labels", {}).get("org.opencontainers.image." + key) ==
                 ann.get("org.opencontainers.image." + key), "label org.opencontainers.image." + key)
        t.ok(ann.get("org.opencontainers.image.version") == version, "annotated version")
        mnt = sh(["podman", "image", "mount", ref]).strip()
        try:
            caps = sh(["getcap", os.path.join(mnt, "usr/bin/pgtlsmon")]).split()[-1]
            have = set(re.sub(r"[=+].*$", "", caps).split(","))
            t.ok(have == CAPS and caps.endswith("=ep"), "file capabilities %s, want %s=ep"
                 % (caps, ",".join(sorted(CAPS))))
            for shell in ("bin/sh", "usr/bin/sh", "usr/bin/bash", "usr/bin/apt", "usr/bin/dpkg"):
                t.ok(not os.path.lexists(os.path.join(mnt, shell)), "no /%s in the image" % shell)
            t.ok(os.path.isfile(os.path.join(mnt, "usr/share/doc/pgtlsmon/copyright")), "copyright kept")
        finally:
            subprocess.run(["podman", "image", "unmount", ref], capture_output=True)

        run_base = PODMAN + ["run", "--rm"] + ulimits() + ["--cap-drop", "ALL",
                                                            "--cap-add", "NET_RAW,BPF,PERFMON"]
        res = subprocess.run(run_base + ["--read-only", ref, "--version"], capture_output=True, text=True)
        t.ok(res.stdout.strip() == "pgtlsmon " + version, "--version in the container: %r %r"
             % (res.stdout, res.stderr))

        # Forensic replay as deploy/README.md shows it: a read-only volume, records on stdout.
        pcaps = os.path.join(SRC, "tests", "data", "pcaps")
        sample = "pg15-tls-versions"
        with open(os.path.join(pcaps, sample + ".pgstat.jsonl")) as f:
            ports = sorted({str(json.loads(l)["server"]["port"]) for l in f if l.strip()})
        res = subprocess.run(run_base + ["--read-only", "-v", pcaps + ":/data:ro", ref, "replay",
                                         "--format", "jsonl", "--ports", ",".join(ports),
                                         "/data/%s.pcap" % sample], capture_output=True, text=True)
        records = os.path.join(work, "replay.jsonl")
        with open(records, "w") as f:
            f.write(res.stdout)
        t.ok(res.returncode == 0, "replay in the container: %s" % res.stderr.strip())
        chk = subprocess.run([sys.executable, os.path.join(SRC, "tests", "e2e", "check_replay.py"),
                              "--actual", records, os.path.join(pcaps, sample + ".pcap")],
                             capture_output=True, text=True)
        t.ok(chk.returncode == 0, "replayed records match %s's truths: %s"
             % (sample, chk.stdout.strip().splitlines()[-1:]))

        # --- live: a real server and clients on a veth pair, the image capturing in between.
        # Two containers on the same traffic: "ebpf" with the seccomp profile of current
        # runtimes (bpf() for CAP_BPF), "default" with Debian 12 podman's own profile, where
        # --capture auto must fall back to libpcap and still count everything.
        profile = seccomp_with_cap_bpf(os.path.join(work, "seccomp.json"))
        runs = {"ebpf": {"opts": ["--security-opt", "seccomp=" + profile], "capture": "ebpf"},
                "default": {"opts": [], "capture": "pcap"}}
        with ph.NetnsPair() as ns, ph.Harness(netns=ns) as h:
            srv = h.start_server()
            ports = iter(p for p in range(9433, 9440) if p != srv.port)
            try:
                for name, r in runs.items():
                    r["name"] = "%s-%s" % (ctr, name)
                    r["port"] = next(ports)
                    r["log"] = os.path.join(work, name)
                    os.makedirs(r["log"])
                    os.chown(r["log"], 9433, 9433)
                    cmd = PODMAN + ["run", "-d", "--name", r["name"]] + ulimits() + r["opts"] + [
                        "--network", "ns:/run/netns/" + ns.server_ns, "--read-only",
                        "--cap-drop", "ALL", "--cap-add", "NET_RAW,BPF,PERFMON",
                        "-v", "%s:/log:rw" % r["log"], ref,
                        "watch", "--interface", ns.server_veth, "--ports", str(srv.port),
                        "--listen", "127.0.0.1:%d" % r["port"], "--session-log", "/log/sessions.jsonl"]
                    res = subprocess.run(cmd, capture_output=True, text=True)
                    t.ok(res.returncode == 0, "%s: podman run -d: %s" % (name, res.stderr.strip()))
                for name, r in runs.items():
                    deadline = time.time() + 30
                    while time.time() < deadline and scrape(ns, r["port"], "/healthz") is None:
                        time.sleep(0.3)
                    logs = subprocess.run(["podman", "logs", r["name"]], capture_output=True, text=True)
                    r["startup"] = (logs.stdout + logs.stderr).strip()
                    print("%s container log:\n  %s" % (name, r["startup"].replace("\n", "\n  ")))
                    t.ok(scrape(ns, r["port"], "/healthz") is not None, "%s: /healthz answers" % name)
                    pid = sh(["podman", "inspect", "--format", "{{.State.Pid}}", r["name"]]).strip()
                    with open("/proc/%s/status" % pid) as f:
                        status = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
                    t.ok(set(status["Uid"].split()) == {"9433"},
                         "%s: runs as uid 9433: Uid %s" % (name, status["Uid"].strip()))
                    bnd = int(status["CapBnd"], 16)
                    t.ok(bnd == sum(1 << b for b in CAP_BITS.values()),
                         "%s: bounding set = NET_RAW,BPF,PERFMON: %#x" % (name, bnd))
                    t.ok(int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0,
                         "%s: no capability left once capture runs: CapEff %s CapPrm %s"
                         % (name, status["CapEff"].strip(), status["CapPrm"].strip()))

                h.psql("tls13")
                h.psql("tls12", tls_version="TLSv1.2")
                h.psql("tls10", tls_version="TLSv1")
                h.s_client_starttls("sc-tls12", tls_version="TLSv1.2")
                h.psql("plain", sslmode="disable")
                srv.restart(ssl_min_protocol_version="TLSv1.2")
                h.psql("fail-tls11", tls_version="TLSv1.1", expect_outcome="tls_failed",
                       expect_alert={"from": "server", "description": "protocol_version"})
                truth = [s.truth() for s in h.sessions]
                want = {}
                for e in truth:
                    exp = e["expected"]
                    key = (exp["outcome"], exp.get("tls_version") or "none")
                    want[key] = want.get(key, 0) + 1
                server = "%s:%d" % (ns.server_ip4, srv.port)
                for name, r in runs.items():
                    got, text = {}, ""
                    deadline = time.time() + 20
                    while time.time() < deadline:
                        text = scrape(ns, r["port"]) or ""
                        got = {}
                        for labels, v in samples(text, "pgtlsmon_sessions_total").items():
                            d = dict(labels)
                            if d.get("server") == server and v:
                                got[(d["outcome"], d["version"])] = int(v)
                        if got == want:
                            break
                        time.sleep(0.5)
                    t.ok(got == want, "%s: pgtlsmon_sessions_total{server=%s}: %s, pg_stat_ssl says %s"
                         % (name, server, sorted(got.items()), sorted(want.items())))
                    captures = [dict(l).get("capture", "") for l in samples(text, "pgtlsmon_build_info")]
                    t.ok(len(captures) == 1 and captures[0].startswith(r["capture"]),
                         "%s: captures with %s: build_info capture=%s" % (name, r["capture"], captures))
            finally:
                for name, r in runs.items():
                    if "name" not in r:
                        continue
                    stop = subprocess.run(["podman", "stop", "-t", "15", r["name"]],
                                          capture_output=True, text=True)
                    state = subprocess.run(["podman", "inspect", "--format", "{{.State.ExitCode}}",
                                            r["name"]], capture_output=True, text=True).stdout.strip()
                    t.ok(stop.returncode == 0 and state == "0",
                         "%s: stops cleanly on SIGTERM: exit %s" % (name, state))
                    subprocess.run(["podman", "rm", "-f", r["name"]], capture_output=True)
            for name, r in runs.items():
                recs = check_replay.load_jsonl(os.path.join(r["log"], "sessions.jsonl"))
                # Sessions that never reached a backend have no client port from the server.
                t.add(check_replay.check_pgstat([e for e in truth if e["client"]["port"]], recs,
                                                name + " session log"))
                t.ok(len(recs) == len(truth), "%s: %d records, %d sessions" % (name, len(recs), len(truth)))
    finally:
        for name in ("ebpf", "default"):
            subprocess.run(["podman", "rm", "-f", "%s-%s" % (ctr, name)], capture_output=True)
        subprocess.run(["podman", "rmi", "-f", ref], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    print("total %.0f s" % (time.time() - t0))
    print("%d passed, %d failed" % (t.passed, t.failed))
    return 0 if t.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
