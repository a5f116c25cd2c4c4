#!/usr/bin/python3
"""Replay of tunnelled copies of the corpus (issue 15), one encapsulation per run.

Usage: check_tunnels.py PGTLSMON SHARED_DIR MODE

Every small capture of SHARED_DIR/corpus is wrapped frame by frame in MODE (wrap_capture.py)
at test time, then:
  1. the wrapped capture's records equal the bare capture's records apart from `tunnel`, and
     every record names the tunnel (type, id, outer addresses) -- or, for the capture that
     interleaves each frame with its VXLAN mirror copy, equal the bare records exactly (one
     record per connection, no count doubled);
  2. for a few captures of different kinds (all of them for plain VXLAN), the records agree
     with Wireshark's (../shared/tools/tshark-sessions, which decapsulates on its own) field
     by field, the tunnel fields included (../shared/tools/compare-sessions);
  3. nothing was counted as a parse error that the bare capture did not have;
  4. (plain VXLAN) --vxlan-ports replaces the default ports, and a bad port is exit 2.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wrap_capture  # noqa: E402

# Larger than this, a capture is left to the benchmark (it only makes the test slower).
MAX_BYTES = 1 << 20
# Kinds of traffic for the Wireshark comparison of the other modes: TLS 1.3, a failed
# handshake, plaintext, a capture cut by the snap length, a cancel request, GSSENC.
TSHARK_SUBSET = ["real_tls13_default", "real_fail_no_shared_cipher",
                 "real_plaintext_sslmode_disable", "real_snaplen96_truncated",
                 "real_cancel_request", "real_gssenc_request", "crafted_clienthello_retransmission"]
# Captures whose reference records are curated: tshark-sessions' own reading of their malformed
# TLS differs from the reference (and from pgtlsmon) on the bare capture already, so only the
# bare-vs-wrapped equality is checked for them.
TSHARK_DIFFERS_BARE = {"crafted_malformed_tls_records"}


def replay(binary, capture, metrics, *flags):
    proc = subprocess.run([binary, "replay", "--format", "jsonl", "--metrics-file", metrics,
                           *flags, capture], capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        sys.exit("pgtlsmon exited %d on %s: %s" % (proc.returncode, capture, proc.stderr))
    return proc.returncode, [json.loads(l) for l in proc.stdout.splitlines() if l.strip()]


def parse_errors(metrics):
    """{(stage, reason): n} of a metrics file, non-zero only."""
    out = {}
    for line in open(metrics):
        m = re.match(r'pgtlsmon_parse_errors_total\{(.*)\} (\S+)', line)
        if m and float(m.group(2)) > 0:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            out[(labels["stage"], labels["reason"])] = float(m.group(2))
    return out


def main():
    binary, shared, mode = sys.argv[1:4]
    kind, tunnel_id, decode_as = wrap_capture.MODES[mode]
    outer = wrap_capture.OUTER6 if mode in ("vxlan8472_v6", "gre_v6_key", "ipip_v6",
                                            "vxlan_in_gre") else wrap_capture.OUTER4
    corpus = os.path.join(shared, "corpus")
    caps = sorted(f for f in os.listdir(corpus)
                  if f.endswith(".pcap") and os.path.getsize(os.path.join(corpus, f)) <= MAX_BYTES)
    failures = []
    checked_tshark = 0
    with tempfile.TemporaryDirectory(prefix="pgtls-tunnel-") as tmp:
        for cap in caps:
            name = cap[:-5]
            bare = os.path.join(corpus, cap)
            wrapped = os.path.join(tmp, name + "." + mode + ".pcap")
            wrap_capture.write_wrapped(mode, bare, wrapped)
            rc_b, want = replay(binary, bare, os.path.join(tmp, "bare.prom"))
            rc_w, got = replay(binary, wrapped, os.path.join(tmp, "wrapped.prom"))
            if rc_b != rc_w:
                failures.append("%s: exit %d bare, %d wrapped" % (name, rc_b, rc_w))
            extra = {k: v for k, v in parse_errors(os.path.join(tmp, "wrapped.prom")).items()
                     if parse_errors(os.path.join(tmp, "bare.prom")).get(k) != v}
            if extra:
                failures.append("%s: parse errors only when wrapped: %s" % (name, extra))
            tunnels = [r.pop("tunnel", None) for r in got]
            if got != want:
                failures.append("%s: %d records wrapped vs %d bare, or fields differ" %
                                (name, len(got), len(want)))
            expect = None if kind is None else {
                "type": kind, "id": tunnel_id, "outer_src": outer[0], "outer_dst": outer[1]}
            bad = [t for t in tunnels if t != expect]
            if bad:
                failures.append("%s: tunnel %s, expected %s" % (name, bad[0], expect))
            if (mode == "vxlan4789_v4" or name in TSHARK_SUBSET) and \
                    name not in TSHARK_DIFFERS_BARE:
                checked_tshark += 1
                ref = os.path.join(tmp, name + ".tshark.jsonl")
                ours = os.path.join(tmp, name + ".ours.jsonl")
                with open(ref, "w") as f:
                    cmd = [os.path.join(shared, "tools", "tshark-sessions")]
                    for rule in decode_as:
                        cmd += ["--decode-as", rule]
                    subprocess.run(cmd + [wrapped], stdout=f, check=True)
                with open(ours, "w") as f:
                    for r, t in zip(got, tunnels):
                        if t is not None:
                            r["tunnel"] = t
                        f.write(json.dumps(r) + "\n")
                cmp = subprocess.run([os.path.join(shared, "tools", "compare-sessions"), ref, ours],
                                     capture_output=True, text=True)
                summary = cmp.stdout.strip().splitlines()[-1:] or ["(no output)"]
                print("%s vs tshark: %s" % (name, summary[0]))
                if cmp.returncode != 0:
                    failures.append("%s: differs from tshark-sessions:\n%s" % (name, cmp.stdout))
            print("%s: %d records, tunnel %s" % (name, len(got), tunnels[0] if tunnels else None))
            if mode == "vxlan4789_v4" and name == "real_tls13_default":
                # --vxlan-ports replaces the default: 4789 no longer decapsulated, then again.
                _, none = replay(binary, wrapped, os.path.join(tmp, "p.prom"), "--vxlan-ports", "8472")
                _, again = replay(binary, wrapped, os.path.join(tmp, "p.prom"), "--vxlan-ports", "4789",
                                  "--geneve-ports", "6081")
                if none or len(again) != len(want):
                    failures.append("--vxlan-ports: %d records with 8472 only, %d with 4789" %
                                    (len(none), len(again)))
                bad = subprocess.run([binary, "replay", "--vxlan-ports", "0", wrapped],
                                     capture_output=True, text=True)
                if bad.returncode != 2 or "--vxlan-ports" not in bad.stderr:
                    failures.append("--vxlan-ports 0: exit %d, %r" % (bad.returncode, bad.stderr))
    print("%s: %d captures, %d compared with tshark" % (mode, len(caps), checked_tshark))
    if len(caps) < 10 or checked_tshark < 5:
        failures.append("too few captures checked")
    for f in failures:
        print("FAIL " + f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
