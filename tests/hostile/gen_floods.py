#!/usr/bin/env python3
"""Deterministic flood captures for tests/hostile (README.md there).

    gen_floods.py syn  OUT.pcap [--flows 1000000]   # distinct half-open connections (SYN only)
    gen_floods.py tls  OUT.pcap [--flows 100000]    # SSLRequest, 'S', ClientHello; no ServerHello

Each also carries real sessions copied from ../shared/corpus (real_tls13_default and
real_plaintext_sslmode_disable) three times (at the start, the middle and the end of the
flood), their packets interleaved with the flood's, their client ports rewritten to
61000 + 100 * copy + n and their timestamps moved into the flood's timeline. OUT.truth.jsonl
gets their reference records with the same rewritten ports, for compare-sessions.
Flood clients are 10.0.0.0/8 (never the real sessions' 127.0.0.1/::1), server 192.168.0.1:5432.
"""
import argparse
import json
import pathlib
import struct

HERE = pathlib.Path(__file__).resolve().parent
SHARED = HERE.parents[2] / "shared"
REAL = ["real_tls13_default", "real_plaintext_sslmode_disable"]
SSL_REQUEST = struct.pack(">II", 8, 80877103)
# Flood packets between two packets of a real session: real connections stay short-lived
# compared to the table cap, so they are not the ones evicted.
INTERLEAVE = 50


def read_pcap(path):
    data = path.read_bytes()
    assert data[:4] == b"\xd4\xc3\xb2\xa1", path
    link = struct.unpack_from("<I", data, 20)[0]
    assert link == 1, (path, link)
    off, out = 24, []
    while off + 16 <= len(data):
        sec, usec, caplen, wire = struct.unpack_from("<IIII", data, off)
        out.append((sec * 1000000 + usec, bytearray(data[off + 16:off + 16 + caplen]), wire))
        off += 16 + caplen
    return out


def tcp_offset(frame):
    et = struct.unpack_from(">H", frame, 12)[0]
    if et == 0x0800:
        return 14 + (frame[14] & 15) * 4
    if et == 0x86DD and frame[20] == 6:
        return 14 + 40
    return None


def real_sessions(copy):
    """(packets, truth records) of the real captures for one copy, ports rewritten."""
    packets, truth, port_map = [], [], {}
    for name in REAL:
        pk = read_pcap(SHARED / "corpus" / f"{name}.pcap")
        t0 = pk[0][0]
        for ts, frame, wire in pk:
            off = tcp_offset(frame)
            if off is None:
                continue
            sport, dport = struct.unpack_from(">HH", frame, off)
            client = sport if dport == 5432 else dport
            new = port_map.setdefault((name, client), 61000 + 100 * copy + len(port_map))
            if dport == 5432:
                struct.pack_into(">H", frame, off, new)
            else:
                struct.pack_into(">H", frame, off + 2, new)
            packets.append((ts - t0, bytes(frame), wire))
        for line in (SHARED / "corpus" / f"{name}.truth.jsonl").read_text().splitlines():
            rec = json.loads(line)
            rec["client"]["port"] = port_map[(name, rec["client"]["port"])]
            truth.append(rec)
    return packets, truth


def ip_checksum(hdr):
    s = sum(struct.unpack(">10H", hdr))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return (~s) & 0xFFFF


def frame(i, sport, flags, seq, ack, payload, to_server=True):
    """Ethernet + IPv4 + TCP (no options) between 10.x.y.z:sport and 192.168.0.1:5432."""
    cip = bytes([10, (i >> 16) & 255, (i >> 8) & 255, i & 255])
    sip = bytes([192, 168, 0, 1])
    src, dst = (cip, sip) if to_server else (sip, cip)
    sp, dp = (sport, 5432) if to_server else (5432, sport)
    ip = bytearray(struct.pack(">BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), i & 0xFFFF, 0x4000,
                               64, 6, 0, src, dst))
    struct.pack_into(">H", ip, 10, ip_checksum(bytes(ip)))
    tcp = struct.pack(">HHIIBBHHH", sp, dp, seq, ack, 0x50, flags, 65535, 0, 0)
    return b"\x00" * 12 + b"\x08\x00" + bytes(ip) + tcp + payload


class Writer:
    def __init__(self, path):
        self.f = open(path, "wb", buffering=1 << 22)
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        self.ts = 1767225600 * 1000000  # 2026-01-01
        self.count = 0

    def put(self, data, wire=None, ts=None):
        t = self.ts if ts is None else ts
        self.f.write(struct.pack("<IIII", t // 1000000, t % 1000000, len(data),
                                 wire or len(data)))
        self.f.write(data)
        self.count += 1

    def close(self):
        self.f.close()


def flood_packets(kind, flows):
    """The flood's packets in order: yields (frame bytes)."""
    port = lambda i: 1024 + i % 60000
    if kind == "syn":
        for i in range(flows):
            yield frame(i, port(i), 0x02, 1000 + i, 0, b"")
        return
    hello = client_hello()
    # In rounds of 10000 connections: handshake, SSLRequest, 'S', ClientHello for all of the
    # round, so 100000 are open at once by the end and none ever sees a ServerHello.
    for base in range(0, flows, 10000):
        rnd = range(base, min(flows, base + 10000))
        for i in rnd:
            yield frame(i, port(i), 0x02, 1000, 0, b"")
        for i in rnd:
            yield frame(i, port(i), 0x12, 5000, 1001, b"", to_server=False)
        for i in rnd:
            yield frame(i, port(i), 0x18, 1001, 5001, SSL_REQUEST)
        for i in rnd:
            yield frame(i, port(i), 0x18, 5001, 1009, b"S", to_server=False)
        for i in rnd:
            yield frame(i, port(i), 0x18, 1009, 5002, hello)


def client_hello():
    """The first ClientHello record of real_tls13_default (after SSLRequest and 'S')."""
    for _, fr, _ in read_pcap(SHARED / "corpus" / "real_tls13_default.pcap"):
        off = tcp_offset(fr)
        if off is None:
            continue
        payload = bytes(fr[off + (fr[off + 12] >> 4) * 4:])
        if payload[:1] == b"\x16" and len(payload) > 9 and payload[5] == 1:
            return payload
    raise SystemExit("no ClientHello in real_tls13_default")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=["syn", "tls"])
    ap.add_argument("out")
    ap.add_argument("--flows", type=int)
    a = ap.parse_args()
    flows = a.flows or (1000000 if a.kind == "syn" else 100000)
    total = flows if a.kind == "syn" else flows * 5
    w = Writer(a.out)
    truth = []
    inserts = {0: 0, total // 2: 1, max(0, total - 3000): 2}
    pending = []   # real packets still to interleave: (relative ts, frame, wire)
    real_base = 0
    n = 0
    for pkt in flood_packets(a.kind, flows):
        if n in inserts:
            packets, recs = real_sessions(inserts[n])
            truth += recs
            pending += packets
            pending.sort(key=lambda p: p[0])
            real_base = w.ts
        if pending and n % INTERLEAVE == 0:
            rel, fr, wire = pending.pop(0)
            # Real packets keep their spacing but never go back in time.
            w.ts = max(w.ts, real_base + rel)
            w.put(fr, wire)
        w.put(pkt)
        w.ts += 2
        n += 1
    for rel, fr, wire in pending:
        w.ts = max(w.ts, real_base + rel)
        w.put(fr, wire)
    w.close()
    pathlib.Path(a.out).with_suffix(".truth.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in truth))
    print(f"{a.out}: {w.count} packets, {flows} flood connections, {len(truth)} real sessions")


if __name__ == "__main__":
    main()
