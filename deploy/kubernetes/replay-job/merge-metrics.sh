#!/bin/sh
# merge-metrics.sh: one Prometheus text file from the --metrics-file of every shard of a replay
# job, as if one pgtlsmon had replayed the whole archive:
#
#   merge-metrics.sh shard-*.prom > /var/lib/node_exporter/textfile/pgtlsmon-replay.prom.$$ &&
#     mv /var/lib/node_exporter/textfile/pgtlsmon-replay.prom.$$ \
#        /var/lib/node_exporter/textfile/pgtlsmon-replay.prom
#
# Per series (metric name + label set): counters (# TYPE ... counter) are summed; gauges take
# the largest value (pgtlsmon_build_info is 1, a certificate's not-after date is the same in
# every shard that saw it, pgtlsmon_flows_active is 0 after a replay). HELP/TYPE lines are kept
# once, series in first-seen order. POSIX awk: runs in busybox.
set -eu
[ $# -ge 1 ] || { echo "usage: merge-metrics.sh FILE..." >&2; exit 2; }
awk '
  function fam(name) {
    if (!(name in seen)) { seen[name] = 1; fams[++nf] = name }
    return name
  }
  /^# (HELP|TYPE) / {
    f = fam($3)
    if ($2 == "TYPE") { type[f] = $4; typeline[f] = $0 } else helpline[f] = $0
    next
  }
  /^#/ || NF == 0 { next }
  {
    v = $NF; key = $0; sub(/[ \t]+[^ \t]+$/, "", key)
    name = key; sub(/[{ ].*/, "", name)
    f = fam(name)
    if (!(key in val)) {
      val[key] = v + 0; series[f, ++count[f]] = key
    } else if (type[f] == "counter") {
      val[key] += v
    } else if (v + 0 > val[key]) {
      val[key] = v + 0
    }
  }
  END {
    for (i = 1; i <= nf; i++) {
      f = fams[i]
      if (f in helpline) print helpline[f]
      if (f in typeline) print typeline[f]
      for (k = 1; k <= count[f]; k++) printf "%s %.17g\n", series[f, k], val[series[f, k]]
    }
  }' "$@"
