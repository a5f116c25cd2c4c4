#!/usr/bin/python3
"""Live tunnelled and mirrored PostgreSQL traffic through real VXLAN devices (issue 15).

Everything runs in network namespaces named l15-<pid>-<n>-<role> (devices l15...), deleted at
the end; the next run reaps those of a killed run. Nothing touches the host's interfaces.

Modes (one CTest each per capture back end, tests/e2e/CMakeLists.txt):

  vxlan   server and client namespaces joined by a veth underlay (IPv4 and IPv6) carrying four
          real VXLAN devices: UDP 4789 and 8472, each over the IPv4 and the IPv6 underlay, each
          with its own VNI and overlay subnet (inner IPv4 and IPv6). A real PostgreSQL 15
          (ssl_min_protocol_version=TLSv1.2) is reached through each overlay by psql (TLS 1.3,
          TLS 1.2, sslmode=disable, inner IPv6) and `openssl s_client -starttls postgres`
          (TLS 1.3, and TLS 1.1, refused with a protocol_version alert). For each device
          tcpdump captures the underlay veth and the VXLAN device at the same time:
          `pgtlsmon replay` records of the underlay capture equal those of the inner capture
          apart from `tunnel` (and `ts`, within 1 s), `tunnel` is {vxlan, VNI, the client's and
          the server's underlay addresses}, both equal the server's pg_stat_ssl, and the
          underlay records equal ../shared/tools/tshark-sessions' (--decode-as for 8472).
          `pgtlsmon watch --capture BACKEND` on the server's underlay veth, running throughout,
          logs the same records and counts every session once.

  mirror  what cloud traffic mirroring does: the server's veth (towards the client) is
          mirrored, ingress and egress, by `tc ... mirred egress mirror` into two VXLAN devices
          towards a monitor namespace (VNI 5154 on UDP 4789 over IPv4, VNI 5155 on UDP 8472
          over IPv6), so the monitor receives every packet twice (two mirror sessions).
          `pgtlsmon watch --capture BACKEND` on the monitor's underlay veth must count every
          session once (pgtlsmon_sessions_total by outcome and version, session log by client
          port), equal to the server's own log (log_connections: "connection received" and
          "connection authorized ... SSL enabled (protocol=...)"). Duplicates: tcpdump -i any
          in the server namespace (bare veth, the VXLAN devices' inner frames and the
          encapsulated underlay copies in one file) replays to one record per connection, and
          `watch -i any` there (pcap, or the eBPF socket filter) counts each session once.
          The nftables rule of deploy/mirroring/pgtlsmon-mirror-drop.nft: first without it the
          monitor's kernel sends ICMP and ICMPv6 destination unreachables back to the mirror
          source (/proc/net/snmp OutDestUnreachs, /proc/net/snmp6 Icmp6OutDestUnreachs),
          then with it (nft -f, in the monitor namespace) none, its counter shows the drops,
          and the monitor still sees every session.

BACKEND (--capture): pcap (libpcap), ebpf (eBPF socket filter) or tc (eBPF TC classifier).
The eBPF back ends see tunnelled sessions only once their programs decapsulate (issue 15,
kernel side); their CTests are registered DISABLED until then.

Exit status 0 passed, 1 failed, 77 skipped (not root, no PG15, no nft ...). Last line:
N passed, M failed.
"""
import argparse
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "bpf"))
import pgharness as ph  # noqa: E402
import check_replay  # noqa: E402
from netns_e2e import Watcher  # noqa: E402

NFT_RULE = os.path.join(HERE, "..", "..", "deploy", "mirroring", "pgtlsmon-mirror-drop.nft")
NS_PREFIX = "l15-"
_NS_RE = re.compile(r"^l15-(\d+)-(\d+)-[a-z]+$")
_topo_count = 0
FAIL_ALERT = {"from": "server", "description": "protocol_version"}


def log(msg):
    print("tunnel_live: %s" % msg, file=sys.stderr, flush=True)


def reap_stale():
    """Namespaces of earlier runs whose process is gone (a CTest timeout kills with SIGKILL)."""
    res = ph.run(["ip", "netns", "list"], check=False)
    for line in res.stdout.decode(errors="replace").splitlines():
        name = (line.split() or [""])[0]
        m = _NS_RE.match(name)
        if m and not ph._pid_alive(int(m.group(1))):
            ph._kill_netns_pids(name)
            ph.run(["ip", "netns", "del", name], check=False)
            log("removed stale network namespace %s" % name)


class Topo:
    """Named namespaces plus the attributes pgharness.Harness reads from a NetnsPair: the
    server runs in `server`, clients in `client`; server_veth is where Harness.capture()
    listens (switched per overlay by the test)."""

    def __init__(self, roles):
        global _topo_count
        reap_stale()
        _topo_count += 1
        self.tag = "%d-%d" % (os.getpid(), _topo_count)
        self.short = "%x%x" % (os.getpid() & 0xfffff, _topo_count)  # device names <= 15 bytes
        self.ns = {r: "%s%s-%s" % (NS_PREFIX, self.tag, r) for r in roles}
        self.created = []
        ph._register(self)
        try:
            for r in roles:
                ph.run(["ip", "netns", "add", self.ns[r]])
                self.created.append(self.ns[r])
                ph.run(["ip", "-n", self.ns[r], "link", "set", "lo", "up"])
        except Exception:
            self.close()
            raise
        self.server_ns, self.client_ns = self.ns["server"], self.ns["client"]

    def dev(self, role):
        return ("l15%s%s" % (role, self.short))[:15]

    def exec_prefix(self, role):
        return ["ip", "netns", "exec", self.ns[role]]

    def ip(self, role, *args, check=True):
        return ph.run(["ip", "-n", self.ns[role]] + list(args), check=check)

    def veth(self, role_a, dev_a, role_b, dev_b, addrs_a, addrs_b):
        ph.run(["ip", "link", "add", dev_a, "netns", self.ns[role_a], "type", "veth", "peer",
                "name", dev_b, "netns", self.ns[role_b]])
        for role, dev, addrs in ((role_a, dev_a, addrs_a), (role_b, dev_b, addrs_b)):
            self.addr(role, dev, addrs)

    def addr(self, role, dev, addrs):
        for a in addrs:
            extra = ["nodad"] if ":" in a else []
            self.ip(role, "addr", "add", a, "dev", dev, *extra)
        self.ip(role, "link", "set", dev, "up")

    def vxlan(self, role, dev, vni, local, remote, dstport, underlay):
        self.ip(role, "link", "add", dev, "type", "vxlan", "id", str(vni), "local", local,
                "remote", remote, "dstport", str(dstport), "dev", underlay)
        self.ip(role, "link", "set", dev, "up")

    def close(self):
        ph._unregister(self)
        for ns in reversed(self.created):
            ph._kill_netns_pids(ns)
            ph.run(["ip", "netns", "del", ns], check=False)
        self.created = []

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()


def watcher(args, topo, role, iface, port, session_log, listen, name, capture=None):
    capture = capture or args.capture
    extra = ["--ebpf-attach", "tc"] if capture == "tc" else []
    w = Watcher(args.pgtlsmon, topo.exec_prefix(role), "pcap" if capture == "pcap" else "ebpf",
                iface, port, session_log, listen, name, extra)
    want = {"pcap": "with pcap", "ebpf": "with ebpf (socket", "tc": "with ebpf (tc"}[capture]
    if not any(want in l for l in w.lines):
        w.close()
        raise ph.HarnessError("%s: not the wanted back end (%s): %s" % (
            name, want, "".join(w.lines)))
    return w


def replay(args, pcap, port, metrics=None):
    cmd = [args.pgtlsmon, "replay", "--format", "jsonl", "--ports", str(port)]
    if metrics:
        cmd += ["--metrics-file", metrics]
    res = subprocess.run(cmd + [pcap], capture_output=True, text=True, timeout=120)
    if res.returncode not in (0, 1):
        raise ph.HarnessError("%s: exit %d: %s" % (" ".join(cmd), res.returncode, res.stderr))
    return [json.loads(l) for l in res.stdout.splitlines() if l.strip()]


def write_jsonl(path, recs):
    with open(path, "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    return path


def ckey(rec):
    return (str(ipaddress.ip_address(rec["client"]["ip"])), int(rec["client"]["port"]))


def norm_ip(a):
    return str(ipaddress.ip_address(a))


def ts_seconds(rec):
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z$", rec.get("ts") or "")
    if not m:
        return None
    return time.mktime(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) + float(m.group(2) or 0)


def compare_outer_inner(t, label, outer, inner, expect_tunnel):
    """Underlay records == inner records apart from tunnel (and ts within 1 s)."""
    t.ok(len(outer) == len(inner), "%s: %d underlay records, %d inner" % (
        label, len(outer), len(inner)))
    by_inner = {ckey(r): r for r in inner}
    for r in outer:
        r = dict(r)
        tun = r.pop("tunnel", None)
        if tun is not None:
            tun = dict(tun, outer_src=norm_ip(tun["outer_src"]),
                       outer_dst=norm_ip(tun["outer_dst"]))
        t.ok(tun == expect_tunnel, "%s %s: tunnel %s, expected %s" % (
            label, ckey(r), tun, expect_tunnel))
        i = by_inner.get(ckey(r))
        if not t.ok(i is not None, "%s %s: no inner record" % (label, ckey(r))):
            continue
        i = dict(i)
        t.ok("tunnel" not in i, "%s %s: inner record has a tunnel" % (label, ckey(r)))
        to, ti = ts_seconds(r), ts_seconds(i)
        t.ok(to is not None and ti is not None and abs(to - ti) < 1.0,
             "%s %s: ts %s vs %s" % (label, ckey(r), r.get("ts"), i.get("ts")))
        r.pop("ts", None)
        i.pop("ts", None)
        if not t.ok(r == i, "%s %s: underlay and inner records differ" % (label, ckey(r))):
            for k in sorted(set(r) | set(i)):
                if r.get(k) != i.get(k):
                    print("   %s: underlay %s / inner %s" % (k, r.get(k), i.get(k)))


def tshark_check(args, t, label, pcap, port, recs, decode_as, work):
    ref = os.path.join(work, label + ".tshark.jsonl")
    cmd = [os.path.join(args.shared_dir, "tools", "tshark-sessions"), "--ports", str(port)]
    for rule in decode_as:
        cmd += ["--decode-as", rule]
    with open(ref, "w") as f:
        subprocess.run(cmd + [pcap], stdout=f, check=True, timeout=120)
    t.ok(len(check_replay.load_jsonl(ref)) == len(recs),
         "%s: tshark-sessions found %d sessions, pgtlsmon %d" % (
             label, len(check_replay.load_jsonl(ref)), len(recs)))
    t.ok(all("tunnel" in r for r in check_replay.load_jsonl(ref)),
         "%s: tshark-sessions records name the tunnel" % label)
    ours = write_jsonl(os.path.join(work, label + ".ours.jsonl"), recs)
    t.add(check_replay.compare_sessions(args.shared_dir, ref, ours, label + " vs tshark"))


# ---------------------------------------------------------------------------------------------
# vxlan: real VXLAN devices, underlay vs inner capture

# name, underlay family, UDP port, VNI; overlay k gets 10.152.k.0/24 and fd00:152:k::/64
VXLAN_DEVICES = [("v4-4789", 4, 4789, 4151), ("v4-8472", 4, 8472, 8151),
                 ("v6-4789", 6, 4789, 4152), ("v6-8472", 6, 8472, 8152)]
UNDER = {4: ("10.151.0.1", "10.151.0.2"), 6: ("fd00:151::1", "fd00:151::2")}


def run_clients(h, tag, ipv6_inner=True):
    h.psql(tag + "-psql-tls13", expect_hrr=True)
    h.psql(tag + "-psql-tls12", tls_version="TLSv1.2")
    h.s_client_starttls(tag + "-sc-tls13", tls_version="TLSv1.3")
    h.s_client_starttls(tag + "-sc-tls11-refused", tls_version="TLSv1.1",
                        expect_outcome="tls_failed", expect_alert=FAIL_ALERT)
    h.psql(tag + "-plain", sslmode="disable")
    if ipv6_inner:
        h.psql(tag + "-psql-tls13-v6", ipv6=True, expect_hrr=True)


def run_vxlan(args, t, work):
    with Topo(["server", "client"]) as topo:
        us, uc = topo.dev("us"), topo.dev("uc")
        topo.veth("server", us, "client", uc, ["10.151.0.1/24", "fd00:151::1/64"],
                  ["10.151.0.2/24", "fd00:151::2/64"])
        overlays = []
        for k, (name, fam, port, vni) in enumerate(VXLAN_DEVICES, 1):
            sdev, cdev = topo.dev("vs%d" % k), topo.dev("vc%d" % k)
            srv_u, cli_u = UNDER[fam]
            topo.vxlan("server", sdev, vni, srv_u, cli_u, port, us)
            topo.vxlan("client", cdev, vni, cli_u, srv_u, port, uc)
            topo.addr("server", sdev, ["10.152.%d.1/24" % k, "fd00:152:%d::1/64" % k])
            topo.addr("client", cdev, ["10.152.%d.2/24" % k, "fd00:152:%d::2/64" % k])
            overlays.append(dict(name=name, port=port, vni=vni, sdev=sdev, srv_u=srv_u,
                                 cli_u=cli_u, srv4="10.152.%d.1" % k, cli4="10.152.%d.2" % k,
                                 srv6="fd00:152:%d::1" % k, cli6="fd00:152:%d::2" % k))
        # What Harness/PgServer read from a NetnsPair (the first overlay's addresses).
        o = overlays[0]
        topo.server_ip4, topo.client_ip4, topo.server_ip6, topo.client_ip6 = (
            o["srv4"], o["cli4"], o["srv6"], o["cli6"])
        topo.subnet4, topo.subnet6, topo.server_veth = "10.152.0.0/16", "fd00:152::/32", o["sdev"]
        with ph.Harness(netns=topo, keep=args.keep) as h:
            srv = h.start_server(listen_addresses="*", ssl_min_protocol_version="TLSv1.2")
            watch_log = os.path.join(work, "watch-underlay.jsonl")
            w = watcher(args, topo, "server", us, srv.port, watch_log, "127.0.0.1:19561",
                        "watch-underlay")
            all_outer = []
            try:
                for o in overlays:
                    label = o["name"]
                    topo.server_veth = o["sdev"]
                    srv.host4, srv.host6 = o["srv4"], o["srv6"]
                    topo.client_ip4, topo.client_ip6 = o["cli4"], o["cli6"]
                    inner_pcap = os.path.join(work, label + ".inner.pcap")
                    outer_pcap = os.path.join(work, label + ".underlay.pcap")
                    under = ph.Tcpdump(outer_pcap, srv.port, iface=us,
                                       netns_prefix=topo.exec_prefix("server"))
                    under.filter = "udp port %d" % o["port"]
                    first = len(h.sessions)
                    with under, h.capture(inner_pcap):
                        run_clients(h, label)
                    truth = [s.truth() for s in h.sessions[first:]]
                    inner = replay(args, inner_pcap, srv.port)
                    outer = replay(args, outer_pcap, srv.port,
                                   os.path.join(work, label + ".underlay.prom"))
                    log("%s: %d sessions, %d inner records, %d underlay records, underlay "
                        "tcpdump %s" % (label, len(truth), len(inner), len(outer), under.stats))
                    t.ok(len(outer) == len(truth), "%s: %d underlay records for %d sessions" % (
                        label, len(outer), len(truth)))
                    compare_outer_inner(t, label, outer, inner, {
                        "type": "vxlan", "id": o["vni"], "outer_src": norm_ip(o["cli_u"]),
                        "outer_dst": norm_ip(o["srv_u"])})
                    t.add(check_replay.check_pgstat(truth, outer, label + " underlay"))
                    t.add(check_replay.check_pgstat(truth, inner, label + " inner"))
                    prom = open(os.path.join(work, label + ".underlay.prom")).read()
                    m = re.search(r'pgtlsmon_tunnel_packets_total\{type="vxlan"\} (\S+)', prom)
                    t.ok(m is not None and float(m.group(1)) > 0,
                         "%s: replay counts decapsulated VXLAN packets: %s" % (
                             label, m and m.group(0)))
                    decode = ["udp.port==8472,vxlan"] if o["port"] == 8472 else []
                    tshark_check(args, t, label, outer_pcap, srv.port, outer, decode, work)
                    all_outer += outer
                time.sleep(0.5)
                total = len(h.sessions)
                counted = w.settled("pgtlsmon_sessions_total")
                vx = w.metric("pgtlsmon_tunnel_packets_total", type="vxlan")
                log("watch --capture %s on the underlay: %d sessions counted, %d VXLAN packets "
                    "decapsulated" % (args.capture, counted, vx))
                t.ok(counted == total, "watch (%s) on the underlay: pgtlsmon_sessions_total %d, "
                     "%d sessions" % (args.capture, counted, total))
                t.ok(vx > 0, "watch: pgtlsmon_tunnel_packets_total{type=vxlan} %d" % vx)
                rc = w.stop()
                t.ok(rc == 0, "watch: exit %s after SIGTERM" % rc)
            finally:
                w.close()
            recs = check_replay.load_jsonl(watch_log) if os.path.exists(watch_log) else []
            t.ok(len(recs) == len(h.sessions), "watch: %d records logged, %d sessions" % (
                len(recs), len(h.sessions)))
            t.add(check_replay.check_pgstat([s.truth() for s in h.sessions], recs, "watch"))
            t.add(check_replay.compare_sessions(
                args.shared_dir, write_jsonl(os.path.join(work, "underlay-all.jsonl"), all_outer),
                watch_log, "replay of the underlay vs watch"))


# ---------------------------------------------------------------------------------------------
# mirror: tc mirred into VXLAN towards a monitor namespace

MIRRORS = [  # device role, VNI, UDP port, server underlay address, monitor underlay address
    ("m4", 5154, 4789, "10.155.0.1", "10.155.0.2"),
    ("m6", 5155, 8472, "fd00:155::1", "fd00:155::2"),
]


def add_mirror(topo, dev, targets):
    """clsact on dev, every packet of ingress and egress mirrored to each target device.
    matchall is what one would write; this machine's kernel lacks cls_matchall, so u32 with a
    match-everything key (the same thing) is the fallback."""
    pre = topo.exec_prefix("server")
    ph.run(pre + ["tc", "qdisc", "add", "dev", dev, "clsact"])
    actions = []
    for tgt in targets:
        actions += ["action", "mirred", "egress", "mirror", "dev", tgt]
    used = None
    for cls in (["matchall"], ["u32", "match", "u32", "0", "0"]):
        ok = True
        for hook in ("ingress", "egress"):
            res = ph.run(pre + ["tc", "filter", "add", "dev", dev, hook, "protocol", "all",
                                "prio", "1"] + cls + actions, check=False)
            if res.returncode != 0:
                ok = False
                ph.run(pre + ["tc", "filter", "del", "dev", dev, hook], check=False)
                break
        if ok:
            used = cls[0]
            break
    if used is None:
        raise ph.HarnessError("tc mirred: neither matchall nor u32 filters could be added")
    return used


def icmp_unreach(topo, role):
    """(IcmpOutDestUnreachs, Icmp6OutDestUnreachs) of a namespace."""
    pre = topo.exec_prefix(role)
    snmp = ph.run(pre + ["cat", "/proc/net/snmp"]).stdout.decode().splitlines()
    hdr = next(l for l in snmp if l.startswith("Icmp:")).split()
    val = [l for l in snmp if l.startswith("Icmp:")][1].split()
    v4 = int(val[hdr.index("OutDestUnreachs")])
    v6 = 0
    for line in ph.run(pre + ["cat", "/proc/net/snmp6"]).stdout.decode().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "Icmp6OutDestUnreachs":
            v6 = int(parts[1])
    return v4, v6


def icmp6_parm_problems(topo, role):
    snmp6 = ph.run(topo.exec_prefix(role) + ["cat", "/proc/net/snmp6"]).stdout.decode()
    for line in snmp6.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "Icmp6OutParmProblems":
            return int(parts[1])
    return 0


# Sent from the server namespace by `python3 -c`: COUNT ERSPAN type II packets (GRE with a
# sequence number, protocol 0x88be, session ID 110) from SRC to DST over a raw IPPROTO_GRE
# socket, each carrying a TCP SYN to port 9 between two addresses nothing else uses (so no
# PostgreSQL session is added). What a switch's ERSPAN session sends, without a GRE device.
ERSPAN_SENDER = r"""
import socket, struct, sys
src, dst, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
s = socket.socket(fam, socket.SOCK_RAW, 47)
s.bind((src, 0))
ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 40, 1, 0, 64, 6, 0, bytes([10, 9, 9, 1]),
                 bytes([10, 9, 9, 2]))
tcp = struct.pack(">HHIIBBHHH", 40000, 9, 1, 0, 0x50, 0x02, 1024, 0, 0)
eth = bytes.fromhex("020000000002020000000001") + b"\x08\x00"
for seq in range(count):
    gre = struct.pack(">HHI", 0x1000, 0x88BE, seq)
    erspan = struct.pack(">HHI", 0x1000, (0 << 13) | 110, 7)
    s.sendto(gre + erspan + eth + ip + tcp, (dst, 0))
"""
ERSPAN_SRC = {4: ("10.155.0.3", "10.155.0.2"), 6: ("fd00:155::3", "fd00:155::2")}
ERSPAN_COUNT = 20


def send_erspan(topo):
    """ERSPAN over IPv4 and IPv6 to the monitor; returns the monitor's (ICMP destination
    unreachables, ICMPv6 parameter problems) answers."""
    before = (icmp_unreach(topo, "monitor")[0], icmp6_parm_problems(topo, "monitor"))
    for fam in (4, 6):
        src, dst = ERSPAN_SRC[fam]
        ph.run(topo.exec_prefix("server") + ["python3", "-c", ERSPAN_SENDER, src, dst,
                                             str(ERSPAN_COUNT)])
    time.sleep(0.3)
    after = (icmp_unreach(topo, "monitor")[0], icmp6_parm_problems(topo, "monitor"))
    return after[0] - before[0], after[1] - before[1]


LOG_RECEIVED = re.compile(r"\[(\d+)\] LOG:  connection received: host=(\S+) port=(\d+)")
LOG_AUTHORIZED = re.compile(r"\[(\d+)\] LOG:  connection authorized: ")
LOG_SSL = re.compile(r"SSL enabled \(protocol=([^,]+),")


def server_log_sessions(text):
    """{(client ip, port): TLS version | 'plaintext' | None (no backend)} from log_connections."""
    pid_key, out = {}, {}
    for line in text.splitlines():
        m = LOG_RECEIVED.search(line)
        if m and m.group(2) != "[local]":
            pid_key[m.group(1)] = (norm_ip(m.group(2)), int(m.group(3)))
            out[pid_key[m.group(1)]] = None
            continue
        m = LOG_AUTHORIZED.search(line)
        if m and m.group(1) in pid_key:
            ssl = LOG_SSL.search(line)
            out[pid_key[m.group(1)]] = ssl.group(1) if ssl else "plaintext"
    return out


def run_mirror(args, t, work):
    with Topo(["server", "client", "monitor"]) as topo:
        sv, cv, su, mu = topo.dev("s"), topo.dev("c"), topo.dev("su"), topo.dev("mu")
        topo.veth("server", sv, "client", cv, ["10.154.0.1/24", "fd00:154::1/64"],
                  ["10.154.0.2/24", "fd00:154::2/64"])
        topo.veth("server", su, "monitor", mu, ["10.155.0.1/24", "fd00:155::1/64",
                                                "10.155.0.3/24", "fd00:155::3/64"],
                  ["10.155.0.2/24", "fd00:155::2/64"])
        # The copies are the server's frames (up to its MTU, 1500) plus 50 (VXLAN over IPv4)
        # or 70 bytes (over IPv6): the mirror path needs a larger MTU, as the cloud's does
        # (deploy/mirroring/README.md); at 1500 the copies of full-size segments did not reach
        # the monitor whole (its records lacked the server's handshake).
        topo.ip("server", "link", "set", su, "mtu", "9000")
        topo.ip("monitor", "link", "set", mu, "mtu", "9000")
        mirror_devs = []
        for role, vni, port, local, remote in MIRRORS:
            dev = topo.dev(role)
            topo.vxlan("server", dev, vni, local, remote, port, su)
            mirror_devs.append(dev)
        cls = add_mirror(topo, sv, mirror_devs)
        log("mirroring %s ingress+egress into %s with tc %s + mirred" % (sv, mirror_devs, cls))
        topo.server_ip4, topo.client_ip4 = "10.154.0.1", "10.154.0.2"
        topo.server_ip6, topo.client_ip6 = "fd00:154::1", "fd00:154::2"
        topo.subnet4, topo.subnet6, topo.server_veth = "10.154.0.0/24", "fd00:154::/64", sv
        with ph.Harness(netns=topo, keep=args.keep) as h:
            srv = h.start_server(ssl_min_protocol_version="TLSv1.2")
            log_start = len(srv.log_text())
            mon_log = os.path.join(work, "watch-monitor.jsonl")
            any_log = os.path.join(work, "watch-server-any.jsonl")
            watchers = [watcher(args, topo, "monitor", mu, srv.port, mon_log, "127.0.0.1:19562",
                                "watch-monitor")]
            # tc attaches to one interface; 'any' is the socket filter's or libpcap's.
            any_capture = "pcap" if args.capture == "pcap" else "ebpf"
            watchers.append(watcher(args, topo, "server", "any", srv.port, any_log,
                                    "127.0.0.1:19563", "watch-server-any", capture=any_capture))
            mon_pcap = os.path.join(work, "monitor.pcap")
            any_pcap = os.path.join(work, "server-any.pcap")
            mon_dump = ph.Tcpdump(mon_pcap, srv.port, iface=mu,
                                  netns_prefix=topo.exec_prefix("monitor"), buffer_kib=32768)
            mon_dump.filter = "udp"
            any_dump = ph.Tcpdump(any_pcap, srv.port, iface="any",
                                  netns_prefix=topo.exec_prefix("server"), buffer_kib=32768)
            any_dump.filter = "tcp port %d or udp" % srv.port
            try:
                with mon_dump, any_dump:
                    # Phase 1: no drop rule. The monitor's kernel answers the copies.
                    before = icmp_unreach(topo, "monitor")
                    with h.capture(os.path.join(work, "bare-1.pcap")):
                        run_clients(h, "nodrop")
                    time.sleep(0.3)
                    after = icmp_unreach(topo, "monitor")
                    d1 = (after[0] - before[0], after[1] - before[1])
                    log("without the nftables rule: %d ICMP, %d ICMPv6 destination unreachable "
                        "sent by the monitor" % d1)
                    # Either family will do: the kernel rate-limits ICMP errors per peer and
                    # globally, and one CI run saw IPv4 answer none of a burst of copies (the
                    # ERSPAN control below still needs both families to answer).
                    t.ok(d1[0] + d1[1] > 0, "without the drop rule the monitor should "
                         "answer the mirrored UDP (ICMP %d, ICMPv6 %d)" % d1)
                    g1 = send_erspan(topo)
                    log("without the nftables rule: %d ERSPAN II packets over IPv4 and over IPv6 "
                        "answered by %d ICMP protocol unreachable, %d ICMPv6 parameter problem" % (
                            (ERSPAN_COUNT,) + g1))
                    t.ok(g1[0] > 0 and g1[1] > 0, "without the drop rule the monitor should "
                         "answer ERSPAN/GRE (ICMP %d, ICMPv6 %d)" % g1)
                    # Phase 2: the rule of deploy/mirroring/, loaded as a user would.
                    ph.run(topo.exec_prefix("monitor") + ["nft", "-f", NFT_RULE])
                    before = icmp_unreach(topo, "monitor")
                    with h.capture(os.path.join(work, "bare-2.pcap")):
                        run_clients(h, "drop")
                        h.psql("drop-psql-tls12-v6", ipv6=True, tls_version="TLSv1.2")
                        h.s_client_starttls("drop-sc-tls12", tls_version="TLSv1.2")
                    time.sleep(0.3)
                    after = icmp_unreach(topo, "monitor")
                    d2 = (after[0] - before[0], after[1] - before[1])
                    g2 = send_erspan(topo)
                    drops = ph.run(topo.exec_prefix("monitor") + ["nft", "list", "table", "inet",
                                                                  "pgtlsmon"]).stdout.decode()
                    counters = [int(n) for n in re.findall(r"counter packets (\d+)", drops)]
                    log("with the nftables rule: %d ICMP, %d ICMPv6 destination unreachable for "
                        "the VXLAN copies, %d ICMP, %d ICMPv6 parameter problem for ERSPAN; the "
                        "rule dropped %s packets (UDP, GRE)" % (d2 + g2 + (counters,)))
                    t.ok(d2 == (0, 0),
                         "with the drop rule the monitor sent ICMP %d, ICMPv6 %d" % d2)
                    t.ok(g2 == (0, 0), "with the drop rule the monitor answered ERSPAN with ICMP "
                         "%d, ICMPv6 %d" % g2)
                    t.ok(len(counters) == 2 and counters[0] > 0 and counters[1] == 2 * ERSPAN_COUNT,
                         "the drop rule's counters: %s (UDP > 0, GRE %d)" % (
                             counters, 2 * ERSPAN_COUNT))
                log("tcpdump: monitor %s, server -i any %s" % (mon_dump.stats, any_dump.stats))
                time.sleep(0.5)
                for w in watchers:
                    w.settled("pgtlsmon_sessions_total")
                server_text = srv.log_text()[log_start:]
                for w in watchers:
                    vx = w.metric("pgtlsmon_tunnel_packets_total", type="vxlan")
                    log("%s (%s): %d sessions counted, %d VXLAN packets decapsulated" % (
                        w.name, args.capture if w.name == "watch-monitor" else any_capture,
                        w.metric("pgtlsmon_sessions_total"), vx))
                    t.ok(vx > 0, "%s: pgtlsmon_tunnel_packets_total{type=vxlan} %d" % (w.name, vx))
                if args.capture == "pcap":
                    # libpcap hands every GRE packet up (the eBPF programs may drop the
                    # ERSPAN'd SYNs to port 9 in the kernel, which is their job).
                    er = watchers[0].metric("pgtlsmon_tunnel_packets_total", type="erspan")
                    t.ok(er == 4 * ERSPAN_COUNT, "watch-monitor: %d ERSPAN packets decapsulated, "
                         "%d sent" % (er, 4 * ERSPAN_COUNT))
                metrics_at_end = {w.name: w.metrics() for w in watchers}
                for w in watchers:
                    rc = w.stop()
                    t.ok(rc == 0, "%s: exit %s after SIGTERM" % (w.name, rc))
            finally:
                for w in watchers:
                    w.close()
            truth = [s.truth() for s in h.sessions]
            want = server_log_sessions(server_text)
            t.ok(len(want) == len(truth), "server log: %d connections, %d sessions run" % (
                len(want), len(truth)))
            for w, path in zip(watchers, (mon_log, any_log)):
                recs = check_replay.load_jsonl(path) if os.path.exists(path) else []
                check_log_and_metrics(t, w.name, recs, metrics_at_end[w.name], want)
                t.add(check_replay.check_pgstat(truth, recs, w.name))
            for label, pcap in (("replay of the monitor capture", mon_pcap),
                                ("replay of the server's -i any capture", any_pcap)):
                prom = pcap + ".prom"
                recs = replay(args, pcap, srv.port, prom)
                # Not vacuous: the -i any file holds bare and VXLAN copies of every packet.
                m = re.search(r'pgtlsmon_tunnel_packets_total\{type="vxlan"\} (\S+)',
                              open(prom).read())
                t.ok(m is not None and float(m.group(1)) > 0,
                     "%s: VXLAN packets decapsulated: %s" % (label, m and m.group(0)))
                check_log_and_metrics(t, label, recs, None, want)
                t.add(check_replay.check_pgstat(truth, recs, label))
                tunnels = {json.dumps(r.get("tunnel"), sort_keys=True) for r in recs}
                log("%s: %d records, tunnels %s" % (label, len(recs), sorted(tunnels)))
                if pcap == mon_pcap:
                    expect = [{"type": "vxlan", "id": vni, "outer_src": norm_ip(local),
                               "outer_dst": norm_ip(remote)}
                              for _r, vni, _p, local, remote in MIRRORS]
                    got = [dict(r.get("tunnel") or {}) for r in recs]
                    for g in got:
                        for k in ("outer_src", "outer_dst"):
                            if k in g:
                                g[k] = norm_ip(g[k])
                    t.ok(all(g in expect for g in got),
                         "%s: every record names a mirror tunnel: %s" % (label, tunnels))
                    tshark_check(args, t, "monitor", pcap, srv.port, recs,
                                 ["udp.port==8472,vxlan"], work)


def check_log_and_metrics(t, label, recs, samples, want):
    """recs (one per connection) and the metrics snapshot against the server log."""
    by_key = {}
    for r in recs:
        by_key.setdefault(ckey(r), []).append(r)
    dup = {k: len(v) for k, v in by_key.items() if len(v) > 1}
    t.ok(not dup, "%s: connections recorded more than once: %s" % (label, dup))
    t.ok(set(by_key) == set(want), "%s: recorded connections %s, server log %s" % (
        label, sorted(by_key), sorted(want)))
    for k, v in want.items():
        r = (by_key.get(k) or [None])[0]
        if r is None:
            continue
        got = ((r.get("tls") or {}).get("version") if r["outcome"] == "tls" else
               "plaintext" if r["outcome"] == "plaintext" else None)
        t.ok(got == v, "%s %s: record says %s (%s), server log %s" % (
            label, k, got, r["outcome"], v))
    if samples is None:
        return

    def metric(name, **labels):
        w = set(labels.items())
        return sum(v for (n, ls), v in samples.items() if n == name and w <= set(ls))
    total = metric("pgtlsmon_sessions_total")
    log("%s: pgtlsmon_sessions_total %d, server log %d connections" % (label, total, len(want)))
    t.ok(total == len(want), "%s: pgtlsmon_sessions_total %d, server log %d connections" % (
        label, total, len(want)))
    for version in sorted({v for v in want.values() if v not in (None, "plaintext")}):
        n = sum(1 for v in want.values() if v == version)
        got = metric("pgtlsmon_sessions_total", outcome="tls", version=version)
        t.ok(got == n, "%s: pgtlsmon_sessions_total{outcome=tls,version=%s} %d, server log %d" % (
            label, version, got, n))
    n = sum(1 for v in want.values() if v == "plaintext")
    got = metric("pgtlsmon_sessions_total", outcome="plaintext")
    t.ok(got == n, "%s: plaintext sessions %d, server log %d" % (label, got, n))
    n = sum(1 for v in want.values() if v is None)
    got = metric("pgtlsmon_sessions_total", outcome="tls_failed")
    t.ok(got == n, "%s: tls_failed sessions %d, server log without a backend %d" % (label, got, n))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pgtlsmon", required=True)
    ap.add_argument("--shared-dir", default=os.environ.get(
        "PGTLS_SHARED_DIR", os.path.join(HERE, "..", "..", "..", "shared")))
    ap.add_argument("--capture", choices=("pcap", "ebpf", "tc"), default="pcap",
                    help="back end of the pgtlsmon watch under test")
    ap.add_argument("--keep", action="store_true", help="keep the temp dirs")
    ap.add_argument("mode", choices=("vxlan", "mirror"))
    args = ap.parse_args()
    args.pgtlsmon = os.path.abspath(args.pgtlsmon)
    need = ph.missing_requirements() + ["%s not found" % p for p in ("ip", "tc", "curl", "tshark")
                                        if not shutil.which(p)]
    if args.mode == "mirror" and not shutil.which("nft"):
        need.append("nft not found (apt-get install nftables)")
    if need:
        print("SKIPPED: " + "; ".join(need))
        return 77
    t = check_replay.Tally()
    work = tempfile.mkdtemp(prefix="pgtls-tunnel-live-")
    os.chmod(work, 0o755)
    start = time.time()
    try:
        {"vxlan": run_vxlan, "mirror": run_mirror}[args.mode](args, t, work)
    except ph.HarnessError as e:
        t.ok(False, "harness: %s" % e)
    finally:
        if args.keep:
            log("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    log("%s --capture %s: %.1f s" % (args.mode, args.capture, time.time() - start))
    print("%d passed, %d failed" % (t.passed, t.failed))
    return 0 if t.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
