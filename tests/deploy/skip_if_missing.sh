#!/bin/sh
# skip_if_missing.sh TOOL ARGS...: run TOOL, or exit 77 (CTest SKIP) when it is not installed.
# With "sh -c SCRIPT", checks the first word of SCRIPT instead.
tool=$1
[ "$tool" = sh ] && [ "$2" = -c ] && tool=${3%% *}
command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool not installed"; exit 77; }
exec "$@"
