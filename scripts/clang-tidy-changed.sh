#!/usr/bin/env bash
# clang-tidy (.clang-tidy) on the C++ files changed since BASE (default: origin/main if it
# exists, else HEAD~1), using build/compile_commands.json. Exit 1 on any warning.
#   scripts/clang-tidy-changed.sh [BASE]
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-$(git rev-parse -q --verify origin/main || git rev-parse HEAD~1)}
[ -f build/compile_commands.json ] || { echo "configure build/ first (cmake --preset dev)" >&2; exit 2; }
mapfile -t files < <(git diff --name-only --diff-filter=AM "$base" -- '*.cc' | grep -v '^tests/fuzz/' || true)
[ ${#files[@]} -gt 0 ] || { echo "clang-tidy: no changed .cc files since $base"; exit 0; }
out=$(clang-tidy -p build --quiet "${files[@]}" 2>/dev/null || true)
if grep -q "warning:\|error:" <<<"$out"; then
  echo "$out"
  exit 1
fi
echo "clang-tidy: ${#files[@]} changed files clean"
