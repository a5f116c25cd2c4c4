#!/usr/bin/env bash
# Runs every deployment check (what CTest's label "deploy" runs one by one).
#   deploy/tests/run.sh [path/to/pgtlsmon]
# A check whose tool is missing reports SKIP (exit 77) and does not fail the run.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-}
py=${PYTHON:-python3}
rc=0
run() {
  local name=$1; shift
  echo "== $name"
  "$@"; local r=$?
  case $r in 0) ;; 77) echo "   (skipped)";; *) echo "   FAILED ($r)"; rc=1;; esac
}
run promtool-check-rules promtool check rules "$here/../prometheus/pgtlsmon-recording.yml" "$here/../prometheus/pgtlsmon-alerts.yml"
run promtool-check-config promtool check config "$here/../prometheus/prometheus.yml"
run promtool-test-rules sh -c "cd '$here/../prometheus/tests' && promtool test rules *.yml"
run promtool-check-metrics sh -c "promtool check metrics < '$here/sample-metrics.prom'"
run manifests "$py" "$here/check_manifests.py"
run systemd "$here/check_systemd.sh" "$bin"
run install "$here/check_install.sh"
run promql "$py" "$here/check_promql.py"
run dashboard-data "$py" "$here/check_promql.py" --metrics-file "$here/sample-metrics.prom" --require-panels all
run dashboard-replay "$here/check_replay_dashboard.sh" "$bin" "${PGTLS_CORPUS:-$here/../../../shared/corpus}"
run flags "$py" "$here/check_flags.py" "$bin"
exit $rc
