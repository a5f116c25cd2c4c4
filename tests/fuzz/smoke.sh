#!/usr/bin/env bash
# CI smoke run of the fuzz targets (CTest 'fuzz_smoke', label fuzz-smoke): builds them with
# clang, ASan+UBSan and libFuzzer in build-fuzz (incremental: only the parser, the capture
# library, the exporter, the what-if engine and the 13 targets), then runs each for FUZZ_SECONDS
# (default 20) from its seed corpus. Any crash, leak, sanitizer report or timeout fails the run; the reproducer is left
# in build-fuzz/fuzz-artifacts/<target>/ (minimise it into tests/fuzz/regressions/<target>/).
#   FUZZ_SECONDS=20 FUZZ_JOBS=2 bash tests/fuzz/smoke.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${FUZZ_SECONDS:-20}
jobs=${FUZZ_JOBS:-2}
build=${FUZZ_BUILD_DIR:-build-fuzz}
targets=(fuzz_pg_startup fuzz_tls_record fuzz_client_hello fuzz_server_hello fuzz_certificate
         fuzz_packet fuzz_tunnel fuzz_file_source fuzz_flow fuzz_hello_cache fuzz_web_request
         fuzz_whatif_settings fuzz_whatif_engine)

if [ ! -f "$build/build.ninja" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPGTLS_BUILD_BPF=OFF -DPGTLS_FUZZ=ON -DPGTLS_SANITIZE="address;undefined" >/dev/null
fi
cmake --build "$build" -j"$jobs" --target fuzz_all

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
run() {
  local t=$1 corpus="$work/$1" art="$build/fuzz-artifacts/$1/"
  mkdir -p "$corpus" "$art"
  local dirs=("$corpus" "tests/fuzz/corpus/$t")
  [ -d "tests/fuzz/regressions/$t" ] && dirs+=("tests/fuzz/regressions/$t")
  # The fresh directory comes first: new inputs go there, the checked-in seeds stay untouched.
  if "$build/tests/fuzz/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2560 \
      -max_len=16384 -print_final_stats=1 -artifact_prefix="$art" \
      "${dirs[@]}" >"$work/$t.log" 2>&1; then
    echo "$t: ok, $(grep -m1 '^stat::number_of_executed_units' "$work/$t.log" | awk '{print $2}') runs," \
      "$(grep 'DONE' "$work/$t.log" | tail -1 | grep -o 'cov: [0-9]* ft: [0-9]*')"
  else
    echo "$t: FAILED"
    grep -E 'ERROR|SUMMARY|Test unit written' "$work/$t.log" | head -5
    tail -3 "$work/$t.log"
    return 1
  fi
}
# Two at a time (one core each), as jobs allows.
pids=()
for t in "${targets[@]}"; do
  run "$t" & pids+=($!)
  if [ ${#pids[@]} -ge "$jobs" ]; then
    wait "${pids[0]}" || fail=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || fail=1; done
exit $fail
