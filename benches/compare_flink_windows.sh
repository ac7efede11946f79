#!/usr/bin/env bash
# The keyed event-time window jobs of benches/windows.rs on rill beside the same jobs on Apache Flink,
# alternating runs on the same machine, and the ratio of the medians.
# Usage: benches/compare_flink_windows.sh [JOB=tumbling|anchor|sliding|session] [RILL_EVENTS] [FLINK_EVENTS] [RUNS] [KEYS]
# Flink jobs: benches/flink/TumblingWindowBench.java (the anchor job ../shared/anchors/flink/WindowBench.java
# timed on the job's net runtime), SlidingWindowBench.java and SessionWindowBench.java; all report on
# the job's net runtime (mini-cluster start-up not counted). JOB=anchor runs the anchor job itself, whose
# figure includes start-up.
# Both sides need runs of several seconds for a steady figure: Flink's JIT warms up over seconds, and
# rill keeps every pane until its first watermark (the 200 ms auto-watermark interval, about 300 s of
# event time at its rate), which weighs on a run under a second. `tumbling 100000000 40000000` gives
# runs of about 4 s and 30 s on 2 cores; the defaults (2e7 each) suit the slower jobs and backends.
# PARS="2" picks the parallelisms (default "1 2").
# BACKEND=lsm runs rill on its LSM backend (CACHED_ROWS rows cached, default 262144) and Flink on its
# RocksDB backend: the tumbling and sliding jobs with their windows in rill's store, the session job
# with its timers in rill's store (its windows stay on the heap; Flink keeps both in RocksDB).
set -euo pipefail
cd "$(dirname "$0")/.."
job=${1:-tumbling}
rill_events=${2:-20000000}
flink_events=${3:-20000000}
runs=${4:-3}
keys=${5:-10000}
backend=${BACKEND:-heap}
flink_backend=hashmap
rill_backend=(backend=heap)
if [ "$backend" = lsm ] && [ "$job" = anchor ]; then
  echo "BACKEND=lsm: the anchor job runs on Flink's heap backend only" >&2; exit 2
fi
if [ "$backend" = lsm ]; then flink_backend=rocksdb; rill_backend=(backend=lsm cached_rows="${CACHED_ROWS:-262144}"); fi
case "$job" in
  tumbling) flink=(benches/flink/run.sh TumblingWindowBench) ;;
  anchor) flink=(../shared/anchors/flink/run.sh WindowBench) ;;
  sliding) flink=(benches/flink/run.sh SlidingWindowBench) ;;
  session) flink=(benches/flink/run.sh SessionWindowBench) ;;
  *) echo "usage: $0 [tumbling|anchor|sliding|session] [RILL_EVENTS] [FLINK_EVENTS] [RUNS] [KEYS]" >&2; exit 2 ;;
esac
cargo build --release --bench windows >/dev/null 2>&1 || cargo build --release --bench windows

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

for par in ${PARS:-1 2}; do
  rill_rates=(); flink_rates=()
  for ((i = 0; i < runs; i++)); do
    rate=$(cargo bench --bench windows -- job="${job/anchor/tumbling}" events="$rill_events" keys="$keys" runs=1 shards="$par" latency=off "${rill_backend[@]}" 2>/dev/null \
      | awk -v p="$par" '$1 == p && NF == 5 { print $2 }')
    rill_rates+=("${rate:-NaN}")
    if [ "$job" = anchor ]; then
      out=$("${flink[@]}" "$flink_events" "$par" hashmap "$keys")
    else
      out=$("${flink[@]}" "$flink_events" "$par" "$keys" "$flink_backend")
    fi
    rate=$(sed -n 's/.*= \([0-9.]*\) M events\/s.*/\1/p' <<<"$out")
    flink_rates+=("${rate:-NaN}")
  done
  rill_median=$(printf '%s\n' "${rill_rates[@]}" | median)
  flink_median=$(printf '%s\n' "${flink_rates[@]}" | median)
  ratio=$(awk -v r="$rill_median" -v f="$flink_median" 'BEGIN { if (f > 0) printf "%.1f", r / f; else print "n/a" }')
  echo "$job windows ($backend / $flink_backend), $keys keys, parallelism $par: rill ${rill_median} M ev/s (runs: ${rill_rates[*]})," \
    "flink ${flink_median} M ev/s (runs: ${flink_rates[*]}), rill/flink ${ratio}x"
done
