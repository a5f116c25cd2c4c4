#!/usr/bin/env bash
# deploy/install.cmake: a throw-away project includes it and installs into a DESTDIR; every
# file must land where deploy/README.md says, with the unit pointing at the installed binary.
#   check_install.sh [cmake]   exit 0 ok, 1 failure, 77 cmake missing
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
deploy=$(cd "$here/.." && pwd)
cmake=${1:-cmake}
command -v "$cmake" >/dev/null || { echo "SKIP: no cmake"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src"
cat >"$tmp/src/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.25)
project(pgtlsmon VERSION 0.1.0 LANGUAGES NONE)
include($deploy/install.cmake)
CM
"$cmake" -S "$tmp/src" -B "$tmp/build" -DCMAKE_INSTALL_PREFIX=/usr >"$tmp/log" 2>&1 \
  || { cat "$tmp/log"; echo "FAIL: configure"; exit 1; }
DESTDIR="$tmp/root" "$cmake" --install "$tmp/build" >"$tmp/log" 2>&1 \
  || { cat "$tmp/log"; echo "FAIL: install"; exit 1; }
fail=0
for f in usr/lib/systemd/system/pgtlsmon.service etc/default/pgtlsmon etc/logrotate.d/pgtlsmon \
    usr/share/doc/pgtlsmon/DEPLOY.md usr/share/doc/pgtlsmon/RUNBOOK.md \
    usr/share/pgtlsmon/prometheus/pgtlsmon-alerts.yml \
    usr/share/pgtlsmon/prometheus/pgtlsmon-recording.yml \
    usr/share/pgtlsmon/prometheus/prometheus.yml \
    usr/share/pgtlsmon/grafana/pgtlsmon.json \
    usr/share/pgtlsmon/grafana/provisioning/dashboards/pgtlsmon.yaml \
    usr/share/pgtlsmon/kubernetes/daemonset.yaml usr/share/doc/pgtlsmon/copyright \
    usr/share/doc/pgtlsmon/changelog.gz; do
  [ -f "$tmp/root/$f" ] || { echo "FAIL: $f not installed"; fail=1; }
done
grep -q '^ExecStart=/usr/bin/pgtlsmon watch \$PGTLSMON_ARGS \$PGTLSMON_WEB_CONFIG$' \
  "$tmp/root/usr/lib/systemd/system/pgtlsmon.service" \
  || { echo "FAIL: installed unit does not run /usr/bin/pgtlsmon"; fail=1; }
cmp -s "$deploy/systemd/pgtlsmon.env" "$tmp/root/etc/default/pgtlsmon" \
  || { echo "FAIL: /etc/default/pgtlsmon differs from pgtlsmon.env"; fail=1; }
[ "$fail" = 0 ] && echo OK
exit "$fail"
