#!/usr/bin/env python3
"""A failed write is exit 1 with a message naming the file (CTest 'replay_write_errors').

    write_errors_test.py PGTLSMON CAPTURE

`pgtlsmon replay` writing its records (table and jsonl, to -o FILE and to standard output) or
its --metrics-file where the bytes cannot go: /dev/full (ENOSPC), a regular file past
RLIMIT_FSIZE (EFBIG, with SIGXFSZ ignored as a daemon's supervisor may leave it), and, as
root, a private "full" character device (1,7) made with mknod as the metrics file (the file
must be written in place, not renamed over). Each case must exit 1 and name the file on
stderr; the same commands with a writable target must exit 0 (so the check can fail). Last
line 'N passed, M failed'.
"""
import os
import resource
import signal
import subprocess
import sys
import tempfile

TIMEOUT = 60


def limit_file_size(max_bytes):
    def pre():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))
    return pre


def main():
    binary, capture = sys.argv[1], sys.argv[2]
    results = []  # one bool per check

    def check(ok, what):
        results.append(bool(ok))
        if not ok:
            print("FAIL: " + what)

    def replay(args, stdout=subprocess.DEVNULL, preexec=None):
        res = subprocess.run([binary, "replay", "--no-progress", "--ports", "any"] + args + [capture],
                             stdout=stdout, stderr=subprocess.PIPE, timeout=TIMEOUT,
                             preexec_fn=preexec)
        return res.returncode, res.stderr.decode(errors="replace")

    def expect_failure(args, names, what, **kw):
        rc, err = replay(args, **kw)
        check(rc == 1, f"{what}: exit {rc}, want 1 (stderr: {err.strip()!r})")
        check(names in err, f"{what}: stderr does not name {names!r}: {err.strip()!r}")

    with tempfile.TemporaryDirectory(prefix="pgtls-write-") as tmp:
        out = os.path.join(tmp, "out.txt")
        prom = os.path.join(tmp, "m.prom")
        # Controls: the same commands succeed where the bytes can go.
        for fmt in ("table", "jsonl"):
            rc, err = replay(["--format", fmt, "-o", out, "--metrics-file", prom])
            check(rc == 0 and os.path.getsize(out) > 0 and os.path.getsize(prom) > 0,
                  f"control {fmt}: exit {rc}, {err.strip()!r}")
        rec_bytes = os.path.getsize(out)
        prom_bytes = os.path.getsize(prom)

        for fmt in ("table", "jsonl"):
            expect_failure(["--format", fmt, "-o", "/dev/full"], "/dev/full", f"{fmt} -o /dev/full")
            with open("/dev/full", "wb") as full:
                expect_failure(["--format", fmt], "stdout", f"{fmt} to stdout on /dev/full",
                               stdout=full)
            # A regular file that cannot grow past a few bytes (EFBIG).
            small = os.path.join(tmp, f"small.{fmt}")
            expect_failure(["--format", fmt, "-o", small], small, f"{fmt} -o past RLIMIT_FSIZE",
                           preexec=limit_file_size(min(rec_bytes, 64) // 2))

        # The metrics file past RLIMIT_FSIZE (the records go to /dev/null, not a file).
        check(prom_bytes > 256, f"metrics file of only {prom_bytes} bytes")
        mfile = os.path.join(tmp, "limited.prom")
        expect_failure(["--format", "jsonl", "-o", "/dev/null", "--metrics-file", mfile], mfile,
                       "--metrics-file past RLIMIT_FSIZE", preexec=limit_file_size(256))
        check(not os.path.exists(mfile), "a partial metrics file was left behind")
        check(not any(n.startswith("limited.prom.tmp") for n in os.listdir(tmp)),
              "the temporary metrics file was left behind")

        if os.geteuid() == 0:
            dev = os.path.join(tmp, "full")
            os.mknod(dev, 0o600 | 0o020000, os.makedev(1, 7))
            expect_failure(["--format", "jsonl", "-o", "/dev/null", "--metrics-file", dev], dev,
                           "--metrics-file on a full device")
            st = os.stat(dev)
            check(os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 7 and
                  (st.st_mode & 0o170000) == 0o020000,
                  "the device node was replaced instead of written to")
        else:
            print("SKIP: --metrics-file on a full device (mknod needs root)")

    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
