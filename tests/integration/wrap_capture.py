#!/usr/bin/python3
"""Wraps every frame of an Ethernet pcap in a tunnel, as a mirror session or overlay would.

Usage: wrap_capture.py MODE IN.pcap OUT.pcap      (MODE: one of MODES below)

Deterministic (fixed outer addresses, ports and ids; the frames' own timestamps), so the
tests can build the wrapped captures at test time. A frame cut by the snap length stays cut
by the same amount: the outer headers carry the wire lengths (the frame is wrapped at its
full length with zeros for the missing bytes, then cut), as a capture of the real tunnel
would show. Frames that are not IP (ARP, ...) are wrapped as Ethernet where the tunnel
carries Ethernet and kept bare otherwise. The outer headers are built by scapy, an
implementation independent of pgtlsmon's decoder.
"""
import struct
import sys

from scapy.contrib.erspan import ERSPAN_II, ERSPAN_III, ERSPAN_PlatformSpecific
from scapy.contrib.geneve import GENEVE, GeneveOptions
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw

OUTER4 = ("198.51.100.1", "198.51.100.2")
OUTER6 = ("2001:db8:100::1", "2001:db8:100::2")
MACS = {"src": "02:00:00:00:01:01", "dst": "02:00:00:00:01:02"}
VNI = 4242
GENEVE_VNI = 77
GRE_KEY = 0x01020304
SPAN_ID = 513

# mode -> (tunnel type in the records, id in the records, tshark --decode-as rules)
MODES = {
    "vxlan4789_v4": ("vxlan", VNI, []),
    "vxlan8472_v6": ("vxlan", VNI, ["udp.port==8472,vxlan"]),
    "geneve_options": ("geneve", GENEVE_VNI, []),
    "gre_csum_key_seq": ("gre", GRE_KEY, []),
    "gre_v6_key": ("gre", GRE_KEY, []),
    "gretap": ("gre", GRE_KEY, []),
    "erspan2": ("erspan", SPAN_ID, []),
    "erspan3_subheader": ("erspan", SPAN_ID, []),
    "ipip_v4": ("ipip", None, []),
    "ipip_v6": ("ipip", None, []),
    "vxlan_in_gre": ("gre", GRE_KEY, []),
    "mirror_interleaved": (None, None, []),  # the original, then its VXLAN copy
}


def outer(v6, l4):
    if v6:
        return Ether(**MACS) / IPv6(src=OUTER6[0], dst=OUTER6[1], hlim=64) / l4
    return Ether(**MACS) / IP(src=OUTER4[0], dst=OUTER4[1], ttl=64, id=0, flags="DF") / l4


def inner_ip(eth):
    """(IP bytes, 4 or 6) of an Ethernet frame, past any VLAN tags; (None, None) if not IP."""
    off, etype = 12, struct.unpack("!H", eth[12:14])[0]
    while etype in (0x8100, 0x88A8, 0x9100):
        off += 4
        etype = struct.unpack("!H", eth[off:off + 2])[0]
    if etype == 0x0800:
        return eth[off + 2:], 4
    if etype == 0x86DD:
        return eth[off + 2:], 6
    return None, None


def vxlan(eth, v6=False, port=4789):
    return outer(v6, UDP(sport=49152, dport=port) / VXLAN(vni=VNI, flags=0x08) / Raw(eth))


def gre(payload, proto, v6=False, **flags):
    return outer(v6, GRE(proto=proto, key=GRE_KEY if flags.get("key_present") else None,
                         sequence_number=7 if flags.get("seqnum_present") else None, **flags)
                 / Raw(payload))


def wrap(mode, eth):
    """The wrapped frames (bytes) for one Ethernet frame."""
    ip, family = inner_ip(eth)
    ip_proto = 0x0800 if family == 4 else 0x86DD
    if mode == "vxlan4789_v4":
        return [vxlan(eth)]
    if mode == "vxlan8472_v6":
        return [vxlan(eth, v6=True, port=8472)]
    if mode == "geneve_options":
        opt = GeneveOptions(classid=0x0102, type=0x80, data=b"\x11\x22\x33\x44\x55\x66\x77\x88")
        return [outer(False, UDP(sport=49152, dport=6081)
                      / GENEVE(vni=GENEVE_VNI, proto=0x6558, options=[opt]) / Raw(eth))]
    if mode == "gretap":
        return [gre(eth, 0x6558, key_present=1)]
    if mode == "erspan2":
        return [gre(bytes(ERSPAN_II(ver=1, session_id=SPAN_ID, vlan=100, index=3)) + eth, 0x88BE,
                    seqnum_present=1)]
    if mode == "erspan3_subheader":
        hdr = ERSPAN_III(session_id=SPAN_ID, vlan=100, timestamp=0x11223344, ft=0, o=1)
        return [gre(bytes(hdr / ERSPAN_PlatformSpecific(platf_id=3)) + eth, 0x22EB,
                    seqnum_present=1)]
    if mode == "vxlan_in_gre":
        return [gre(bytes(vxlan(eth)), 0x6558, v6=True, key_present=1)]
    if mode == "mirror_interleaved":
        return [Raw(eth), vxlan(eth)]
    if ip is None:
        return [Raw(eth)]  # the IP-only tunnels cannot carry it
    if mode == "gre_csum_key_seq":
        return [gre(ip, ip_proto, chksum_present=1, key_present=1, seqnum_present=1)]
    if mode == "gre_v6_key":
        return [gre(ip, ip_proto, v6=True, key_present=1)]
    if mode in ("ipip_v4", "ipip_v6"):
        v6 = mode == "ipip_v6"
        proto = 4 if family == 4 else 41
        if v6:
            return [Ether(**MACS) / IPv6(src=OUTER6[0], dst=OUTER6[1], nh=proto) / Raw(ip)]
        return [Ether(**MACS) / IP(src=OUTER4[0], dst=OUTER4[1], proto=proto, id=0) / Raw(ip)]
    raise ValueError("unknown mode " + mode)


def read_pcap(path):
    """(linktype, [(sec, usec, caplen, wirelen, bytes)]) of a classic pcap."""
    data = open(path, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    end = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack(end + "I", data[20:24])[0]
    frames, off = [], 24
    while off + 16 <= len(data):
        sec, frac, caplen, wirelen = struct.unpack(end + "IIII", data[off:off + 16])
        frames.append((sec, frac, caplen, wirelen, data[off + 16:off + 16 + caplen]))
        off += 16 + caplen
    return linktype, magic in (0xA1B23C4D, 0x4D3CB2A1), frames


def write_wrapped(mode, src, dst):
    linktype, nanos, frames = read_pcap(src)
    if linktype != 1:
        sys.exit("wrap_capture: %s: only Ethernet captures are wrapped (linktype %d)" % (src, linktype))
    with open(dst, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B23C4D if nanos else 0xA1B2C3D4, 2, 4, 0, 0,
                              262144, 1))
        for sec, frac, caplen, wirelen, frame in frames:
            cut = max(wirelen - caplen, 0)
            full = frame + b"\x00" * cut
            for pkt in wrap(mode, full):
                b = bytes(pkt)
                kept = b[:len(b) - cut]
                out.write(struct.pack("<IIII", sec, frac, len(kept), len(b)))
                out.write(kept)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in MODES:
        sys.exit("usage: wrap_capture.py {%s} IN.pcap OUT.pcap" % ",".join(MODES))
    write_wrapped(*sys.argv[1:])
