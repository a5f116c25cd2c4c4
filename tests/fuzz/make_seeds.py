#!/usr/bin/env python3
"""Seeds tests/fuzz/corpus/<target>/ from the shared capture corpus.

Reads every capture of ../shared/corpus (classic pcap and pcapng), follows each TCP connection
and cuts out what each fuzz target takes as input: PostgreSQL startup messages, the TLS byte
streams, ClientHello/ServerHello/Certificate bodies, DER certificates, single frames, small
capture files and whole connections in fuzz_flow's chunk format. Files are named by the SHA-1
of their content (deduplicated) and capped in size and number, so the whole corpus stays at a
few hundred KB. Deterministic: running it twice gives the same files.

    python3 tests/fuzz/make_seeds.py [--shared ../shared] [--out tests/fuzz/corpus]
"""
import argparse
import hashlib
import pathlib
import struct
import sys

MAX_FILE = 6000       # bytes per seed
MAX_PER_TARGET = 60   # seeds per target


def read_capture(path):
    """Yields (linktype, frame) for every packet of a pcap or pcapng file."""
    data = path.read_bytes()
    magic = data[:4]
    if magic == b"\x0a\x0d\x0d\x0a":
        off, e, links = 0, "<", []
        while off + 12 <= len(data):
            btype = struct.unpack_from("<I", data, off)[0]
            if btype == 0x0A0D0D0A:
                e = "<" if data[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
                links = []
            blen = struct.unpack_from(e + "I", data, off + 4)[0]
            if blen < 12 or off + blen > len(data):
                return
            body = data[off + 8:off + blen - 4]
            if btype == 1:
                links.append(struct.unpack_from(e + "H", body, 0)[0])
            elif btype == 6:
                iface, _, _, caplen = struct.unpack_from(e + "IIII", body, 0)
                if iface < len(links):
                    yield links[iface], body[20:20 + caplen]
            elif btype == 3 and links:
                yield links[0], body[4:]
            off += blen
        return
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        return
    link = struct.unpack_from(e + "I", data, 20)[0]
    off = 24
    while off + 16 <= len(data):
        caplen = struct.unpack_from(e + "I", data, off + 8)[0]
        yield link, data[off + 16:off + 16 + caplen]
        off += 16 + caplen


def tcp_of(link, frame):
    """(src, dst, sport, dport, seq, flags, payload) of a TCP frame, or None."""
    if link == 1:
        off, et = 14, struct.unpack_from(">H", frame, 12)[0] if len(frame) >= 14 else 0
        while et in (0x8100, 0x88A8) and len(frame) >= off + 4:
            et = struct.unpack_from(">H", frame, off + 2)[0]
            off += 4
        ip = frame[off:] if et in (0x0800, 0x86DD) else b""
    elif link == 0:
        ip = frame[4:]
    elif link == 113:
        ip = frame[16:]
    elif link == 276:
        ip = frame[20:]
    elif link in (101, 228, 229, 12, 14):
        ip = frame
    else:
        return None
    if len(ip) < 20:
        return None
    if ip[0] >> 4 == 4:
        ihl = (ip[0] & 15) * 4
        if ip[9] != 6:
            return None
        total = struct.unpack_from(">H", ip, 2)[0]
        src, dst, tcp = ip[12:16], ip[16:20], ip[ihl:total]
    elif ip[0] >> 4 == 6 and len(ip) >= 40:
        if ip[6] != 6:
            return None
        plen = struct.unpack_from(">H", ip, 4)[0]
        src, dst, tcp = ip[8:24], ip[24:40], ip[40:40 + plen]
    else:
        return None
    if len(tcp) < 20:
        return None
    sport, dport, seq = struct.unpack_from(">HHI", tcp, 0)
    doff = (tcp[12] >> 4) * 4
    return src, dst, sport, dport, seq, tcp[13], bytes(tcp[doff:])


class Conn:
    def __init__(self, client):
        self.client = client          # (ip, port) of the SYN's sender (or first sender)
        self.segments = []            # (dir, payload) in capture order
        self.streams = [bytearray(), bytearray()]
        self.next_seq = [None, None]

    def add(self, d, seq, flags, payload):
        if flags & 0x02:
            self.next_seq[d] = (seq + 1) & 0xFFFFFFFF
            return
        if not payload:
            return
        if self.next_seq[d] is None:
            self.next_seq[d] = seq
        if seq != self.next_seq[d]:
            return  # retransmission, overlap or hole: keep the in-order bytes only
        self.next_seq[d] = (seq + len(payload)) & 0xFFFFFFFF
        self.segments.append((d, payload))
        self.streams[d] += payload


def connections(path):
    conns = {}
    frames = []
    for link, frame in read_capture(path):
        frames.append((link, frame))
        t = tcp_of(link, frame)
        if t is None:
            continue
        src, dst, sport, dport, seq, flags, payload = t
        key = frozenset([(src, sport), (dst, dport)])
        c = conns.get(key)
        if c is None:
            c = conns[key] = Conn((src, sport))
        c.add(0 if (src, sport) == c.client else 1, seq, flags, payload)
    return list(conns.values()), frames


def tls_messages(stream):
    """(record_version, type, body) handshake messages and SSLv2 hellos of a TLS stream."""
    out, hs, ver, off = [], bytearray(), 0, 0
    if len(stream) >= 3 and stream[0] & 0x80 and stream[2] == 1:
        n = ((stream[0] & 0x7F) << 8) | stream[1]
        out.append((0, "sslv2", bytes(stream[2:2 + n])))
        return out
    while off + 5 <= len(stream):
        ctype, ver, n = stream[off], struct.unpack_from(">H", stream, off + 1)[0], \
            struct.unpack_from(">H", stream, off + 3)[0]
        body = stream[off + 5:off + 5 + n]
        off += 5 + n
        if ctype == 20:
            break  # encrypted from here on
        if ctype != 22:
            continue
        hs += body
        while len(hs) >= 4:
            mlen = int.from_bytes(hs[1:4], "big")
            if len(hs) < 4 + mlen:
                break
            out.append((ver, hs[0], bytes(hs[4:4 + mlen])))
            del hs[:4 + mlen]
    return out


def split_pg(conn):
    """(startup messages of the client, client TLS stream, server TLS stream)."""
    c, s = bytes(conn.streams[0]), bytes(conn.streams[1])
    msgs = []
    off = 0
    while off + 8 <= len(c) and len(msgs) < 3:
        n = struct.unpack_from(">I", c, off)[0]
        code = struct.unpack_from(">I", c, off + 4)[0]
        if n < 8 or n > 10000 or off + n > len(c):
            break
        msgs.append(c[off:off + n])
        off += n
        if code in (80877103, 80877104):  # SSLRequest/GSSENCRequest: the answer byte follows
            if s[:1] == b"S":
                return msgs, c[off:], s[1:]
            s = s[1:]
            continue
        break
    if c[:1] == b"\x16":  # direct TLS
        return msgs, c, s
    return msgs, b"", b""


def pcap_file(link, frames):
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, link))
    for i, f in enumerate(frames):
        out += struct.pack("<IIII", 1700000000 + i, i, len(f), len(f)) + f
    return bytes(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = pathlib.Path(__file__).resolve().parent
    ap.add_argument("--shared", default=str(here.parents[2] / "shared"))
    ap.add_argument("--out", default=str(here / "corpus"))
    args = ap.parse_args()
    corpus = pathlib.Path(args.shared) / "corpus"
    caps = sorted(p for p in corpus.rglob("*") if p.suffix in (".pcap", ".pcapng"))
    seeds = {t: {} for t in ("fuzz_pg_startup", "fuzz_tls_record", "fuzz_client_hello",
                             "fuzz_server_hello", "fuzz_certificate", "fuzz_packet",
                             "fuzz_tunnel", "fuzz_file_source", "fuzz_flow", "fuzz_hello_cache")}

    def add(target, data):
        data = bytes(data[:MAX_FILE])
        if data and len(seeds[target]) < MAX_PER_TARGET * 4:
            seeds[target].setdefault(hashlib.sha1(data).hexdigest(), data)

    for cap in caps:
        conns, frames = connections(cap)
        # Single frames: the first few TCP frames with payload, link type chosen by byte 0
        # (fuzz_packet's table: index 0 NULL, 1 Ethernet, 2 RAW, 5 IPv4).
        idx = {0: 0, 1: 1, 101: 2, 108: 3, 113: 4, 228: 5, 229: 6, 276: 7}
        with_payload = [(l, f) for l, f in frames if (t := tcp_of(l, f)) and t[6]]
        for link, frame in with_payload[:3]:
            if link in idx:
                add("fuzz_packet", bytes([idx[link]]) + frame[:600])
        # A small capture file: the first packets of the capture, and the raw head of pcapngs.
        if frames:
            add("fuzz_file_source", pcap_file(frames[0][0], [f[:300] for _, f in frames[:8]]))
        if cap.suffix == ".pcapng":
            add("fuzz_file_source", cap.read_bytes()[:MAX_FILE])
        for conn in conns[:4]:
            msgs, ctls, stls = split_pg(conn)
            for m in msgs:
                add("fuzz_pg_startup", b"\x80" + m)
            for stream in (ctls, stls):
                if stream:
                    add("fuzz_tls_record", b"\xff\x01" + stream[:4000])
                    add("fuzz_tls_record", b"\x10\x00" + stream[:1500])
                for ver, typ, body in tls_messages(stream):
                    if typ == "sslv2":
                        add("fuzz_client_hello", b"\x01" + body)
                    elif typ == 1:
                        add("fuzz_client_hello", b"\x00" + body)
                        # The same hello twice: mutating one copy gives two of one shape.
                        add("fuzz_hello_cache", b"\x00" + body + b"HELO" + body)
                    elif typ == 2:
                        add("fuzz_server_hello", body)
                        add("fuzz_hello_cache", b"\x01" + body + b"HELO" + body)
                    elif typ == 11:
                        add("fuzz_certificate", b"\x01" + body)
                        if len(body) > 6:
                            n = int.from_bytes(body[3:6], "big")
                            add("fuzz_certificate", b"\x00" + body[6:6 + n])
            # The whole connection in fuzz_flow's format: mode byte, then control byte +
            # payload per segment, separated by "FUZZ"; the first 24 segments.
            chunks = [bytes([d]) + p[:1500] for d, p in conn.segments[:24]]
            if chunks:
                add("fuzz_flow", b"\x00" + b"FUZZ".join(chunks))

    # fuzz_tunnel: Ethernet frames with payload wrapped in each encapsulation by the tunnel
    # tests' wrapper (scapy), byte 0 = 0 (Ethernet, default ports).
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "integration"))
    import wrap_capture  # noqa: E402 (needs python3-scapy)
    for cap in caps:
        if cap.name not in ("real_tls13_default.pcap", "real_plaintext_sslmode_disable.pcap"):
            continue
        _, frames = connections(cap)
        with_payload = [f for l, f in frames if l == 1 and (t := tcp_of(l, f)) and t[6]]
        for mode in wrap_capture.MODES:
            for frame in with_payload[:2]:
                for pkt in wrap_capture.wrap(mode, frame[:400]):
                    add("fuzz_tunnel", b"\x00" + bytes(pkt))

    out = pathlib.Path(args.out)
    total = 0
    for target, files in seeds.items():
        d = out / target
        d.mkdir(parents=True, exist_ok=True)
        for old in d.iterdir():
            old.unlink()
        # A deterministic, content-blind pick (by hash) up to the cap.
        for h, data in sorted(files.items(), key=lambda kv: kv[0])[:MAX_PER_TARGET]:
            (d / h).write_bytes(data)
            total += len(data)
        print(f"{target}: {min(len(files), MAX_PER_TARGET)} seeds", file=sys.stderr)
    print(f"total {total} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
