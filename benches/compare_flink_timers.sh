#!/usr/bin/env bash
# The event-time timers job on rill beside the same job on Apache Flink (benches/flink/TimerBench.java),
# alternating runs on the same machine, and the ratio of the medians.
# Usage: benches/compare_flink_timers.sh [RILL_EVENTS] [FLINK_EVENTS] [RUNS] [KEYS]
# Both sides sample the watermark lag at the sink (now - the watermark the sink sees), which trails
# by one watermark interval (200 ms) since a watermark's timers reach the sink before it does.
set -euo pipefail
cd "$(dirname "$0")/.."
rill_events=${1:-20000000}
flink_events=${2:-10000000}
runs=${3:-3}
keys=${4:-100000}
cargo build --release --bench event_time_timers >/dev/null 2>&1 || cargo build --release --bench event_time_timers

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

for par in 1 2; do
  rill_rates=(); rill_timers=(); rill_lag=(); flink_rates=(); flink_timers=(); flink_lag=()
  for ((i = 0; i < runs; i++)); do
    line=$(cargo bench --bench event_time_timers -- events="$rill_events" keys="$keys" runs=1 shards="$par" 2>/dev/null \
      | awk -v p="$par" '$1 == p && NF >= 8 { print }')
    rill_rates+=("$(awk '{ print $2 }' <<<"$line")")
    rill_timers+=("$(awk '{ print $3 }' <<<"$line")")
    rill_lag+=("$(awk '{ sub("ms", "", $5); print $5 }' <<<"$line")")
    line=$(benches/flink/run.sh TimerBench "$flink_events" "$par" "$keys" | grep '^TimerBench ')
    flink_rates+=("$(sed -n 's/.*events_per_s=\([0-9.]*\)M.*/\1/p' <<<"$line")")
    flink_timers+=("$(sed -n 's/.*timers_per_s=\([0-9.]*\)M.*/\1/p' <<<"$line")")
    flink_lag+=("$(sed -n 's/.*wm_lag_p99_ms=\([-0-9]*\).*/\1/p' <<<"$line")")
  done
  r=$(printf '%s\n' "${rill_rates[@]}" | median); f=$(printf '%s\n' "${flink_rates[@]}" | median)
  rt=$(printf '%s\n' "${rill_timers[@]}" | median); ft=$(printf '%s\n' "${flink_timers[@]}" | median)
  rl=$(printf '%s\n' "${rill_lag[@]}" | median); fl=$(printf '%s\n' "${flink_lag[@]}" | median)
  ratio=$(awk -v r="$r" -v f="$f" 'BEGIN { printf "%.1f", r / f }')
  echo "timers, parallelism $par: rill ${r} M ev/s ${rt} M timers/s wm lag p99 ${rl} ms (runs: ${rill_rates[*]});" \
    "flink ${f} M ev/s ${ft} M timers/s wm lag p99 ${fl} ms (net; runs: ${flink_rates[*]}); rill/flink ${ratio}x"
done
