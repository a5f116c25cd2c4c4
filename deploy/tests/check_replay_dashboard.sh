#!/usr/bin/env bash
# Real data for the dashboard: `pgtlsmon replay --metrics-file` over the capture corpus, the
# file must lint with promtool, and the dashboard's key panels must return data from it.
#   check_replay_dashboard.sh PGTLSMON CORPUS_DIR   exit 0 ok, 1 failure, 77 binary/corpus/tools absent
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-}; corpus=${2:-}
[ -x "$bin" ] || { echo "SKIP: pgtlsmon not built"; exit 77; }
command -v promtool >/dev/null || { echo "SKIP: promtool not installed"; exit 77; }
shopt -s nullglob
caps=("$corpus"/*.pcap "$corpus"/*.pcapng)
[ ${#caps[@]} -gt 0 ] || { echo "SKIP: no captures in '$corpus'"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$bin" replay --ports any --metrics-file "$tmp/replay.prom" "${caps[@]}" >/dev/null 2>"$tmp/err"
rc=$?
# A damaged capture in the corpus may make replay exit 1 after writing what it read.
[ -s "$tmp/replay.prom" ] || { cat "$tmp/err"; echo "FAIL: replay (exit $rc) wrote no metrics"; exit 1; }
promtool check metrics <"$tmp/replay.prom" || { echo "FAIL: promtool check metrics"; exit 1; }
exec "${PYTHON:-python3}" "$here/check_promql.py" --metrics-file "$tmp/replay.prom"
