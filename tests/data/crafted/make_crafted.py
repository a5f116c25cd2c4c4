#!/usr/bin/env python3
"""Writes crafted captures for cases no real client here produces, packet by packet.

sslv2-hello.pcap: after SSLRequest/'S', a client sends an SSLv2-format ClientHello (RFC 5246
appendix E.2) offering TLS 1.0; the server answers a TLS 1.0 ServerHello (RSA, AES128-SHA),
then both close. Session 2 is direct TLS with an SSLv2-format hello and no server answer.
Deterministic: same bytes every run. Truth: ../../../../shared/tools/tshark-sessions, less the fields tshark does not dissect
for SSLv2-format hellos (cipher specs, JA3; a direct-TLS SSLv2 hello is not handed to TLS).
"""
import struct
import sys


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def ipv4_tcp(src, dst, sport, dport, seq, ack, flags, payload):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
    pseudo = struct.pack("!4s4sBBH", bytes(src), bytes(dst), 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, bytes(src), bytes(dst))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return b"\0" * 12 + b"\x08\x00" + ip + tcp  # Ethernet, zero MACs (as on lo)


class Conn:
    def __init__(self, out, cport, t):
        self.out, self.cport, self.t = out, cport, t
        self.c, self.s = [127, 0, 0, 1], [127, 0, 0, 1]
        self.cseq, self.sseq = 1000 + cport, 9000 + cport

    def send(self, from_client, flags, payload=b""):
        self.t += 0.001
        if from_client:
            f = ipv4_tcp(self.c, self.s, self.cport, 5432, self.cseq, self.sseq, flags, payload)
            self.cseq += len(payload) + (1 if flags & 0x03 else 0)
        else:
            f = ipv4_tcp(self.s, self.c, 5432, self.cport, self.sseq, self.cseq, flags, payload)
            self.sseq += len(payload) + (1 if flags & 0x03 else 0)
        sec = int(self.t)
        self.out.append(struct.pack("<IIII", sec, int((self.t - sec) * 1e6), len(f), len(f)) + f)

    def open(self):
        self.send(True, 0x02)
        self.sseq -= 0
        self.send(False, 0x12)
        self.send(True, 0x10)

    def close(self):
        self.send(True, 0x11)
        self.send(False, 0x11)


def sslv2_hello():
    specs = [0x000035, 0x00002f, 0x00000a, 0x010080, 0x070080]  # two TLS suites, 3DES, SSLv2 RC4/3DES
    body = struct.pack("!BHHHH", 1, 0x0301, 3 * len(specs), 0, 16)
    body += b"".join(struct.pack("!I", s)[1:] for s in specs) + bytes(range(16))
    return struct.pack("!H", 0x8000 | len(body)) + body


def server_hello():
    hello = struct.pack("!H", 0x0301) + bytes(32) + b"\x00" + struct.pack("!HB", 0x002f, 0)
    hs = b"\x02" + struct.pack("!I", len(hello))[1:] + hello
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def main(path):
    out = []
    a = Conn(out, 41001, 1767225600.0)
    a.open()
    a.send(True, 0x18, bytes.fromhex("0000000804d2162f"))
    a.send(False, 0x18, b"S")
    a.send(True, 0x18, sslv2_hello())
    a.send(False, 0x18, server_hello())
    a.close()
    b = Conn(out, 41002, 1767225601.0)
    b.open()
    b.send(True, 0x18, sslv2_hello())
    b.close()
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1) + b"".join(out))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "sslv2-hello.pcap")
