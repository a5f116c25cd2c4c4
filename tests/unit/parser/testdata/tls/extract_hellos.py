#!/usr/bin/env python3
"""Regenerates corpus_hellos.txt: the TLS bytes that carry each session's first ClientHello and
ServerHello in the shared corpus, with the reference fingerprints (JA3/JA3S from the tshark truth
records, JA4 from FoxIO's published *.ja4.json).

Usage: extract_hellos.py /work/shared/corpus > corpus_hellos.txt

Line format (space separated):
  <capture> <client_port> c <ja3|-> <ja4|-> <hex of the client's TLS records up to the ClientHello>
  <capture> <client_port> s <ja3s|-> - <hex of the server's TLS records up to the ServerHello>
"""
import glob
import json
import os
import subprocess
import sys

PG_REQUESTS = (bytes.fromhex("0000000804d2162f"), bytes.fromhex("0000000804d21630"))


def streams(pcap):
    out = subprocess.run(
        ["tshark", "-r", pcap, "-T", "fields", "-E", "separator=|", "-e", "tcp.stream",
         "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.seq", "-e", "tcp.payload",
         "-Y", "tcp.len > 0"], capture_output=True, text=True, check=False).stdout
    data = {}  # (stream, srcport) -> {seq: bytes}
    ports = {}
    for line in out.splitlines():
        s, sp, dp, seq, payload = line.split("|")
        if not payload:
            continue
        data.setdefault((s, sp), {})[int(seq)] = bytes.fromhex(payload.replace(":", ""))
        ports.setdefault(s, set()).update((sp, dp))
    flows = {}
    for (s, sp), segs in data.items():
        buf = bytearray()
        for seq in sorted(segs):
            off = seq - 1
            if off > len(buf):
                break  # a hole
            seg = segs[seq]
            buf[off:off + len(seg)] = seg
        flows[(s, sp)] = bytes(buf)
    return flows, ports


def strip_preamble(b, client):
    if client:
        while b[:8] in PG_REQUESTS:
            b = b[8:]
    else:
        while b[:1] in (b"S", b"N", b"G"):
            b = b[1:]
    return b


def hello_prefix(b, want):
    """The records up to the one completing the first handshake message of type `want`."""
    if b[:1] and b[0] & 0x80 and len(b) > 2 and b[2] == 1:
        n = 2 + (((b[0] & 0x7F) << 8) | b[1])
        return b[:n] if want == 1 and len(b) >= n else None
    pos, hs = 0, b""
    while pos + 5 <= len(b):
        n = (b[pos + 3] << 8) | b[pos + 4]
        if b[pos] not in (20, 21, 22, 23) or pos + 5 + n > len(b):
            return None
        if b[pos] == 22:
            hs += b[pos + 5:pos + 5 + n]
            while len(hs) >= 4:
                ln = int.from_bytes(hs[1:4], "big")
                if len(hs) < 4 + ln:
                    break
                if hs[0] == want:
                    return b[:pos + 5 + n]
                hs = hs[4 + ln:]
        pos += 5 + n
    return None


def main():
    root = sys.argv[1]
    pcaps = sorted(glob.glob(os.path.join(root, "*.pcap")))
    pcaps += sorted(glob.glob(os.path.join(root, "third_party", "*", "*.pcap*")))
    seen_ja4 = set()
    for pcap in pcaps:
        name = os.path.basename(pcap).split(".")[0]
        base = pcap.rsplit(".", 1)[0]
        if "malformed" in name or "snaplen" in name:
            continue
        truth = {}
        if os.path.exists(base + ".truth.jsonl"):
            for line in open(base + ".truth.jsonl"):
                r = json.loads(line)
                truth[str(r["client"]["port"])] = r
        ja4 = {}
        if os.path.exists(base + ".ja4.json"):
            for e in json.load(open(base + ".ja4.json")):
                if "JA4.1" in e and e.get("srcport"):
                    ja4[str(e["srcport"])] = (e["JA4.1"], e.get("JA4_r.1", ""))
        flows, ports = streams(pcap)
        for s, ps in sorted(ports.items(), key=lambda kv: int(kv[0])):
            cport = next((p for p in ps if p in truth), None)
            if cport is None:
                continue
            rec = truth[cport]
            sport = next(p for p in ps if p != cport) if len(ps) > 1 else cport
            ch, sh = rec.get("client_hello"), rec.get("server_hello")
            expected_ja4 = ja4.get(cport)
            if expected_ja4 and ja4 and expected_ja4[1] in seen_ja4:
                continue  # FoxIO's captures repeat the same browser hello many times
            if expected_ja4:
                seen_ja4.add(expected_ja4[1])
            if ch:
                b = hello_prefix(strip_preamble(flows.get((s, cport), b""), True), 1)
                if b:
                    print(name, cport, "c", ch.get("ja3") or "-",
                          expected_ja4[0] if expected_ja4 else "-", b.hex())
            if sh and not ja4:
                b = hello_prefix(strip_preamble(flows.get((s, sport), b""), False), 2)
                if b:
                    print(name, cport, "s", sh.get("ja3s") or "-", "-", b.hex())


if __name__ == "__main__":
    main()
