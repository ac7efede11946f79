#!/usr/bin/env bash
# rill beside Apache Flink on the same machine, in one session: a job benchmark of rill, then the same
# job on Flink (benches/flink/RollingSumBench.java), alternating, and the ratio of the medians.
# Usage: benches/compare_flink.sh [rolling|keyby|chain] [RILL_EVENTS] [FLINK_EVENTS] [RUNS]
# Flink needs far more events than rill for a steady figure (its JIT warms up over seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
job=${1:-rolling}
rill_events=${2:-30000000}
flink_events=${3:-50000000}
runs=${4:-3}
case "$job" in
  rolling) bench=keyed_rolling_sum ;;
  keyby) bench=keyby_exchange ;;
  chain) bench=stateless_chain ;;
  *) echo "usage: $0 [rolling|keyby|chain] [RILL_EVENTS] [FLINK_EVENTS] [RUNS]" >&2; exit 2 ;;
esac
cargo build --release --bench "$bench" >/dev/null 2>&1 || cargo build --release --bench "$bench"

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

for par in 1 2; do
  rill_rates=(); flink_rates=()
  for ((i = 0; i < runs; i++)); do
    rate=$(cargo bench --bench "$bench" -- events="$rill_events" runs=1 shards="$par" latency=off 2>/dev/null \
      | awk -v p="$par" '$1 == p && NF >= 5 { print $2 }')
    rill_rates+=("$rate")
    rate=$(benches/flink/run.sh RollingSumBench "$flink_events" "$par" 10000 "$job" \
      | sed -n 's/.*= \([0-9.]*\) M events\/s.*/\1/p')
    flink_rates+=("$rate")
  done
  rill_median=$(printf '%s\n' "${rill_rates[@]}" | median)
  flink_median=$(printf '%s\n' "${flink_rates[@]}" | median)
  ratio=$(awk -v r="$rill_median" -v f="$flink_median" 'BEGIN { printf "%.1f", r / f }')
  echo "$job, parallelism $par: rill ${rill_median} M ev/s (runs: ${rill_rates[*]}), flink ${flink_median} M ev/s (net; runs: ${flink_rates[*]}), rill/flink ${ratio}x"
done
