#!/usr/bin/python3
"""One consistent snapshot per scrape (issue 12, item 5; tests/e2e/README.md).

Bursts of short plaintext sessions on lo while a scraper reads /metrics back to back: in every
scrape, the capture counters must be at least as new as the session counts beside them. Each
session here is at least 6 packets on lo (SYN, SYN-ACK, ACK, StartupMessage, its ACK or the
answer, FIN...), so pgtlsmon_packets_total >= 6 x pgtlsmon_sessions_total in every scrape
(before the fix: sessions counted, packets still 0 for up to a second). Root; 77 = skipped.

    scrape_consistency.py --pgtlsmon build/pgtlsmon
"""
import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import watchlib as wl  # noqa: E402

MIN_PACKETS_PER_SESSION = 6


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pgtlsmon", required=True)
    ap.add_argument("--bursts", type=int, default=8)
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("SKIP: needs root (libpcap on lo)")
        return 77
    bad, scrapes, last = [], 0, (0, 0)
    with wl.FakePgServer() as pg, wl.WatchProcess(a.pgtlsmon, [pg.port]) as w:
        stop = threading.Event()

        def burst():
            for _ in range(a.bursts):
                for _ in range(20):
                    wl.raw_plaintext_session(pg.port)
                time.sleep(0.7)
            stop.set()

        t = threading.Thread(target=burst)
        t.start()
        while not stop.is_set():
            s = w.samples()
            sessions = wl.metric_sum(s, "pgtlsmon_sessions_total")
            packets = wl.metric_sum(s, "pgtlsmon_packets_total")
            scrapes += 1
            last = (sessions, packets)
            if packets < MIN_PACKETS_PER_SESSION * sessions:
                bad.append((sessions, packets))
        t.join()
        errors = wl.metric_sum(w.samples(), "pgtlsmon_stats_read_errors_total")
    print("%d scrapes during %d bursts of 20 sessions; last: %d sessions, %d packets; "
          "inconsistent: %d %s" % (scrapes, a.bursts, last[0], last[1], len(bad), bad[:5]))
    if last[0] < 20 * a.bursts:
        print("FAIL: not every session was counted")
        return 1
    if errors != 0:
        print("FAIL: stats read errors %s" % errors)
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
