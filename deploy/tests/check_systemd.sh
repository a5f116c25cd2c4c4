#!/usr/bin/env bash
# systemd unit checks: `systemd-analyze verify`, exposure score <= MAX_EXPOSURE, the flags file
# and the logrotate snippet agree with the unit.
#   check_systemd.sh [PGTLSMON_BINARY]   exit 0 ok, 1 failure, 77 systemd-analyze missing
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sysd="$here/../systemd"
MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}
command -v systemd-analyze >/dev/null || { echo "SKIP: systemd-analyze not installed"; exit 77; }
fail=0
err() { echo "FAIL: $*"; fail=1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# verify needs ExecStart's binary to exist: the real one when built, else a stand-in.
bin=${1:-}
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
  bin="$tmp/pgtlsmon"
  printf '#!/bin/sh\nexit 0\n' >"$bin"
  chmod +x "$bin"
fi
sed "s#^ExecStart=/usr/local/bin/pgtlsmon #ExecStart=$bin #" "$sysd/pgtlsmon.service" >"$tmp/pgtlsmon.service"
grep -q "^ExecStart=$bin watch " "$tmp/pgtlsmon.service" || err "ExecStart is not '/usr/local/bin/pgtlsmon watch ...'"

if ! out=$(systemd-analyze verify "$tmp/pgtlsmon.service" 2>&1) || [ -n "$out" ]; then
  err "systemd-analyze verify: $out"
fi
sec=$(systemd-analyze security --offline=true "$tmp/pgtlsmon.service" 2>&1)
score=$(printf '%s\n' "$sec" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
if [ -z "$score" ]; then
  err "no exposure score: $sec"
else
  echo "exposure level: $score (max $MAX_EXPOSURE)"
  awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }' || {
    printf '%s\n' "$sec" | grep '✗'; err "exposure $score > $MAX_EXPOSURE"; }
fi

# Settings the deployment relies on (a later edit must not drop them silently).
for want in '^DynamicUser=yes' '^NoNewPrivileges=yes' '^ProtectSystem=strict' '^ProtectHome=yes' \
    '^PrivateTmp=yes' '^Restart=on-failure' '^ExecReload=/bin/kill -HUP \$MAINPID' \
    '^EnvironmentFile=-/etc/default/pgtlsmon' '^LogsDirectory=pgtlsmon' '^StateDirectory=pgtlsmon' \
    '^RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_PACKET AF_NETLINK$' \
    '^SystemCallFilter=@system-service bpf' \
    '^CapabilityBoundingSet=CAP_NET_RAW CAP_BPF CAP_PERFMON$' \
    '^AmbientCapabilities=CAP_NET_RAW CAP_BPF CAP_PERFMON$'; do
  grep -Eq "$want" "$sysd/pgtlsmon.service" || err "pgtlsmon.service lacks /$want/"
done
# A later ~@privileged / ~@debug would take bpf away again.
grep -Eq '^SystemCallFilter=~.*@privileged' "$sysd/pgtlsmon.service" && err "~@privileged removes bpf"

# The flags file: one PGTLSMON_ARGS line, session log inside LogsDirectory, loopback listen.
args=$(sed -n 's/^PGTLSMON_ARGS="\(.*\)"$/\1/p' "$sysd/pgtlsmon.env")
[ -n "$args" ] || err "pgtlsmon.env: no PGTLSMON_ARGS=\"...\" line"
case " $args " in *" --interface "*) ;; *) err "pgtlsmon.env: no --interface";; esac
log=$(printf '%s\n' "$args" | sed -n 's/.*--session-log \([^ ]*\).*/\1/p')
case "$log" in /var/log/pgtlsmon/*) ;; *) err "session log '$log' outside LogsDirectory /var/log/pgtlsmon";; esac
grep -q "^$log {" "$sysd/pgtlsmon.logrotate" || err "logrotate does not rotate $log"
grep -q 'systemctl reload pgtlsmon' "$sysd/pgtlsmon.logrotate" || err "logrotate postrotate does not reload"
if command -v logrotate >/dev/null; then
  logrotate -d "$sysd/pgtlsmon.logrotate" >/dev/null 2>&1 || err "logrotate -d rejects the snippet"
fi
[ "$fail" = 0 ] && echo OK
exit "$fail"
