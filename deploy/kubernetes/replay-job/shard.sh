#!/bin/sh
# shard.sh: which capture files of an archive one shard of a Kubernetes Indexed Job replays.
#
#   shard.sh [--mode block|modulo] INDEX COUNT DIR [LINKDIR]
#
# Lists the regular files under DIR (recursively, by path name: `tcpdump -G` / `-C` names sort
# in time order), and keeps those of shard INDEX (0-based, e.g. $JOB_COMPLETION_INDEX) of
# COUNT:
#   block  (default) the INDEX-th of COUNT contiguous runs of files: shard 0 the oldest files,
#          shard COUNT-1 the newest. Only COUNT-1 file boundaries become shard boundaries, so
#          few connections are split between two shards.
#   modulo every COUNT-th file (`ls | awk 'NR % COUNT == INDEX'`): evenly spread when file
#          sizes drift over time, but every file boundary is a shard boundary.
# Prints the chosen paths, one a line; with LINKDIR, also makes a symbolic link to each in
# LINKDIR (named 000000-BASENAME, in order), which `pgtlsmon replay LINKDIR` then reads as one
# capture. POSIX sh + find + sort + awk: runs in busybox.
set -eu
mode=block
if [ "${1:-}" = "--mode" ]; then mode=$2; shift 2; fi
[ $# -ge 3 ] || { echo "usage: shard.sh [--mode block|modulo] INDEX COUNT DIR [LINKDIR]" >&2; exit 2; }
index=$1 count=$2 dir=$3 links=${4:-}
case $index$count in *[!0-9]*|"") echo "shard.sh: INDEX and COUNT must be numbers" >&2; exit 2;; esac
[ "$count" -ge 1 ] && [ "$index" -lt "$count" ] || { echo "shard.sh: need 0 <= INDEX < COUNT" >&2; exit 2; }
case $mode in block|modulo) ;; *) echo "shard.sh: --mode block or modulo" >&2; exit 2;; esac
[ -d "$dir" ] || { echo "shard.sh: $dir: not a directory" >&2; exit 1; }
[ -z "$links" ] || mkdir -p "$links"
find "$dir" -type f | LC_ALL=C sort | awk -v i="$index" -v n="$count" -v mode="$mode" '
  { path[NR] = $0 }
  END {
    for (k = 1; k <= NR; k++) {
      # block: file k (1-based) of NR belongs to shard floor((k-1) * n / NR).
      s = (mode == "modulo") ? (k - 1) % n : int((k - 1) * n / NR)
      if (s == i) print path[k]
    }
  }' | {
  k=0
  while IFS= read -r f; do
    printf '%s\n' "$f"
    if [ -n "$links" ]; then
      ln -s "$f" "$links/$(printf '%06d' "$k")-$(basename "$f")"
      k=$((k + 1))
    fi
  done
}
