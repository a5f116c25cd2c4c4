#!/usr/bin/env python3
"""Every pgtlsmon flag used in deploy/ (systemd flags file and unit, Kubernetes args, the
image's default command in container/build-image.sh, command lines in the docs) must appear in `pgtlsmon <subcommand> --help`.

  check_flags.py PATH/TO/pgtlsmon      exit 0 ok, 1 mismatch, 77 binary not built yet
"""
import glob
import json
import os
import re
import shlex
import subprocess
import sys

try:
    import yaml
except ImportError:  # Debian: python3-yaml
    print("SKIP: PyYAML (python3-yaml) not installed")
    sys.exit(77)

DEPLOY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(DEPLOY)
FLAG = re.compile(r"--[a-z][a-z0-9-]*")


def uses():
    """[(where, subcommand, [tokens])]"""
    out = []
    env = os.path.join(DEPLOY, "systemd", "pgtlsmon.env")
    with open(env) as f:
        for line in f:
            m = re.match(r'\s*PGTLSMON_ARGS=(.*)$', line)
            if m:
                out.append((env, "watch", shlex.split(shlex.split(m.group(1))[0])))
    unit = os.path.join(DEPLOY, "systemd", "pgtlsmon.service")
    with open(unit) as f:
        for line in f:
            if line.startswith("ExecStart="):
                toks = line.split("=", 1)[1].split()
                out.append((unit, toks[1], toks[2:]))
    for path in glob.glob(os.path.join(DEPLOY, "kubernetes", "*.yaml")):
        with open(path) as f:
            for d in yaml.safe_load_all(f):
                if d and d.get("kind") in ("DaemonSet", "Deployment"):
                    for c in d["spec"]["template"]["spec"]["containers"]:
                        args = [str(a) for a in c.get("args", [])]
                        out.append((path, args[0], args[1:]))
    image = os.path.join(DEPLOY, "container", "build-image.sh")
    with open(image) as f:
        for line in f:
            m = re.match(r"\s*--cmd '(\[.*\])'", line)
            if m:
                args = json.loads(m.group(1))
                out.append((image, args[0], args[1:]))
    # Command lines in docs and comments: "pgtlsmon watch ..." / "pgtlsmon replay ...".
    texts = [os.path.join(DEPLOY, "README.md"), os.path.join(ROOT, "docs", "RUNBOOK.md"),
             os.path.join(ROOT, "README.md"), image, env, unit,
             os.path.join(DEPLOY, "systemd", "pgtlsmon.logrotate")]
    texts += sorted(glob.glob(os.path.join(DEPLOY, "mirroring", "*.md")))
    for path in texts:
        if not os.path.exists(path):
            continue
        with open(path) as f:
            for line in f:
                for m in re.finditer(r"pgtlsmon(?::\S+)?\s+(watch|replay)\b([^`#|;&\n]*)", line):
                    out.append((path, m.group(1), m.group(2).split()))
    return out


def main():
    if len(sys.argv) != 2 or not (os.path.isfile(sys.argv[1]) and os.access(sys.argv[1], os.X_OK)):
        print(f"SKIP: pgtlsmon binary not built ({sys.argv[1:] or 'no path'})")
        return 77
    binary = sys.argv[1]
    helps, errors = {}, []
    found = uses()
    for where, sub, toks in found:
        if sub not in ("watch", "replay"):
            errors.append(f"{where}: unknown subcommand {sub!r}")
            continue
        if sub not in helps:
            r = subprocess.run([binary, sub, "--help"], capture_output=True, text=True, timeout=30)
            text = r.stdout + r.stderr
            if r.returncode != 0:
                errors.append(f"`pgtlsmon {sub} --help` exited {r.returncode}: {text.strip()[:300]}")
            helps[sub] = set(FLAG.findall(text))
        for t in toks:
            for flag in FLAG.findall(t.split("=", 1)[0]) if t.startswith("--") else []:
                if flag not in helps[sub] and flag not in ("--help", "--version"):
                    errors.append(f"{os.path.relpath(where, ROOT)}: {sub} {flag} "
                                  f"is not in `pgtlsmon {sub} --help`")
    print(f"checked {len(found)} command lines against --help")
    for e in sorted(set(errors)):
        print("FAIL:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
