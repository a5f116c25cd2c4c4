#!/usr/bin/env bash
# clang-tidy (.clang-tidy) on the C++ files changed since BASE (default: origin/main if it
# exists, else HEAD~1), using build/compile_commands.json (configured here with the dev preset
# when build/ is missing). Slow (minutes a file on 2 cores): not part of .ci/run. Exit 1 on any
# warning.
#   scripts/clang-tidy-changed.sh [BASE]
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-$(git rev-parse -q --verify origin/main || git rev-parse HEAD~1)}
# A fresh clone has no build/: configure it (the dev preset; CMakeLists.txt turns on
# CMAKE_EXPORT_COMPILE_COMMANDS) and generate the BPF skeleton headers the capture sources
# include. Nothing else is compiled.
if [ ! -f build/compile_commands.json ]; then
  echo "clang-tidy: configuring build/ (cmake --preset dev) for compile_commands.json" >&2
  cmake --preset dev >/dev/null
fi
if grep -q '^PGTLS_BUILD_BPF:BOOL=ON' build/CMakeCache.txt 2>/dev/null; then
  cmake --build build --target pgtls_bpf_skel_gen >/dev/null
fi
mapfile -t files < <(git diff --name-only --diff-filter=AM "$base" -- '*.cc' || true)
[ ${#files[@]} -gt 0 ] || { echo "clang-tidy: no changed .cc files since $base"; exit 0; }
# clang-tidy reports a warning located in any header, even a system one or one outside
# HeaderFilterRegex, when one of its notes is in the main file; clang-analyzer does that for the
# generated BPF skeletons (build/bpf/*.skel.h: unix.Malloc on bpftool's error paths). clang-tidy 14
# has no option to exclude a path, so drop every warning (with its notes) located under build/.
out=$(clang-tidy -p build --quiet "${files[@]}" 2>/dev/null |
  awk -v build="$PWD/build/" '
    /^[^ ]+:[0-9]+:[0-9]+: (warning|error): / {
      skip = index($0, build) == 1 || index($0, "build/") == 1
    }
    !skip' || true)
if grep -q "warning:\|error:" <<<"$out"; then
  echo "$out"
  exit 1
fi
echo "clang-tidy: ${#files[@]} changed files clean"
