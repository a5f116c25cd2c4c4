#!/usr/bin/env bash
# Replays one capture of ../shared/corpus and compares pgtlsmon's records with the capture's
# reference records (made by Wireshark) field by field; for FoxIO's captures also every JA4
# against FoxIO's published value.
#   check_corpus.sh PGTLSMON SHARED_DIR CAPTURE [--ports any]
set -euo pipefail
bin=$1 shared=$2 cap=$3
shift 3
base=${cap%.*}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
rc=0
"$bin" replay --format jsonl "$@" "$cap" >"$out" || rc=$?
# A capture cut short mid-packet (suricata-verify's) legitimately exits 1 after its records.
if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then
  echo "pgtlsmon exited $rc on $cap" >&2
  exit 1
fi
"$shared/tools/compare-sessions" "$base.truth.jsonl" "$out"
# FoxIO lists JA4 only for streams with a ClientHello (CVE-2018-6794 has none: HTTP only).
if [ -f "$base.ja4.json" ] && grep -q '"JA4.1"' "$base.ja4.json"; then
  "$shared/tools/compare-ja4" "$base.ja4.json" "$out"
fi
