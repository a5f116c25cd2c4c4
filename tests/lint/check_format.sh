#!/usr/bin/env bash
# Fails, naming the files, when a C++ source differs from what clang-format makes of it.
# Fix with: git ls-files '*.cc' '*.h' | grep -v '^bpf/' | xargs clang-format -i
set -euo pipefail
fmt=${1:-clang-format}
bad=()
while IFS= read -r f; do
  if ! "$fmt" --dry-run --Werror "$f" >/dev/null 2>&1; then bad+=("$f"); fi
done < <(git ls-files '*.cc' '*.h' 2>/dev/null | grep -v '^bpf/' || find app capture exporter parser tests bench -name '*.cc' -o -name '*.h')
if [ ${#bad[@]} -gt 0 ]; then
  echo "not clang-formatted: ${bad[*]}"
  echo "0 passed, 1 failed"
  exit 1
fi
echo "clang-format: every C++ file is formatted"
