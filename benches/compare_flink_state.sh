#!/usr/bin/env bash
# The keyed state jobs of benches/keyed_state.rs (ValueState, ListState or MapState ops in a keyed process
# function, heap backend) on rill beside the same jobs on Apache Flink (benches/flink/KeyedStateBench.java,
# hashmap backend), alternating runs on the same machine, on parallelism 1 and 2; prints a table of the
# medians and the ratio of the medians. Both sides report records/s on the job's own runtime (Flink: the
# job's net runtime, mini-cluster start-up not counted).
# Usage: benches/compare_flink_state.sh [OP=value|list|map] [RILL_EVENTS] [FLINK_EVENTS] [RUNS] [KEYS]
# e.g.   benches/compare_flink_state.sh map 20000000 10000000 3 10000
# Flink needs far more events than rill for a steady figure (its JIT warms up over seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
op=${1:-value}
rill_events=${2:-20000000}
flink_events=${3:-10000000}
runs=${4:-3}
keys=${5:-10000}
case "$op" in
  value | list | map) ;;
  *) echo "usage: $0 [value|list|map] [RILL_EVENTS] [FLINK_EVENTS] [RUNS] [KEYS]" >&2; exit 2 ;;
esac
cargo build --release --bench keyed_state >/dev/null 2>&1 || cargo build --release --bench keyed_state

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "== keyed state op=$op, $keys keys: rill $rill_events events, flink $flink_events events, median of $runs runs"
printf '   %4s %12s %14s %13s %15s %11s   %s\n' \
  par "rill M ev/s" "rill M ops/s" "flink M ev/s" "flink M ops/s" rill/flink "runs (rill | flink, M ev/s)"
for par in 1 2; do
  rill_rates=(); rill_ops=(); flink_rates=(); flink_ops=()
  for ((i = 0; i < runs; i++)); do
    row=$(cargo bench --bench keyed_state -- op="$op" events="$rill_events" keys="$keys" runs=1 shards="$par" 2>/dev/null \
      | awk -v p="$par" '$1 == p && NF == 7 { print $2, $3 }')
    rill_rates+=("$(awk '{ print $1 }' <<<"${row:-NaN NaN}")")
    rill_ops+=("$(awk '{ print $2 }' <<<"${row:-NaN NaN}")")
    out=$(benches/flink/run.sh KeyedStateBench "$flink_events" "$par" "$keys" "$op")
    rate=$(sed -n 's/.*= \([0-9.]*\) M events\/s.*/\1/p' <<<"$out")
    ops=$(sed -n 's/.* \([0-9.]*\) M state ops\/s.*/\1/p' <<<"$out")
    flink_rates+=("${rate:-NaN}")
    flink_ops+=("${ops:-NaN}")
  done
  rill_median=$(printf '%s\n' "${rill_rates[@]}" | median)
  rill_ops_median=$(printf '%s\n' "${rill_ops[@]}" | median)
  flink_median=$(printf '%s\n' "${flink_rates[@]}" | median)
  flink_ops_median=$(printf '%s\n' "${flink_ops[@]}" | median)
  ratio=$(awk -v r="$rill_median" -v f="$flink_median" 'BEGIN { if (f > 0) printf "%.1fx", r / f; else print "n/a" }')
  printf '   %4s %12s %14s %13s %15s %11s   %s | %s\n' "$par" "$rill_median" "$rill_ops_median" "$flink_median" \
    "$flink_ops_median" "$ratio" "${rill_rates[*]}" "${flink_rates[*]}"
done
