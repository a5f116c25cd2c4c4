#!/usr/bin/env bash
# Builds pgtlsmon and passes every test. This is the README's test command, and .ci/run runs
# exactly this. Needs root (packages, PostgreSQL end-to-end tests, eBPF tests).
#   1. release build with warnings as errors (-DPGTLS_WERROR=ON, off for users), ctest of every
#      label: unit, integration (corpus agreement), e2e (a real PostgreSQL 15 + clients +
#      Prometheus), bpf, deploy;
#   2. an ASan+UBSan build running the unit tests and the fuzz regression inputs;
#   3. a ThreadSanitizer build running the threaded tests (label tsan).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

bash scripts/install-deps.sh
# ccache (installed by install-deps.sh): a second run of this script, or a build dir made anew,
# compiles only what changed.
export CMAKE_C_COMPILER_LAUNCHER=ccache CMAKE_CXX_COMPILER_LAUNCHER=ccache

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGTLS_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs" --timeout 600

if [ "${PGTLS_SKIP_ASAN:-0}" != 1 ]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DPGTLS_BUILD_BPF=OFF -DPGTLS_WERROR=ON \
    -DPGTLS_SANITIZE="address;undefined" >/dev/null
  cmake --build build-asan -j"$jobs"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs" -L 'unit|fuzz' --timeout 600
fi

# 3. a ThreadSanitizer build of what runs threads: the exporter's unit tests, and (label 'tsan')
#    replay --threads, the decompression threads of compressed archives, the watch daemon, and
#    pipeline_test (ShardedPipeline's threads on their own). Only those targets are built.
if [ "${PGTLS_SKIP_TSAN:-0}" != 1 ]; then
  threaded_units=(http_test metrics_test capture_set_test)
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGTLS_BUILD_BPF=OFF \
    -DPGTLS_SANITIZE=thread >/dev/null
  cmake --build build-tsan -j"$jobs" --target pgtlsmon pipeline_test "${threaded_units[@]}"
  export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
  units_re="^($(IFS='|'; echo "${threaded_units[*]}"))\\."
  ctest --test-dir build-tsan --output-on-failure -j"$jobs" -R "$units_re|^pipeline_test\$" --timeout 600
  ctest --test-dir build-tsan --output-on-failure -j"$jobs" -L tsan --timeout 600
fi
