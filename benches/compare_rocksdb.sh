#!/usr/bin/env bash
# The LSM store workload of benches/lsm_store.rs (rill::lsm::LsmStore on one glommio executor) beside the
# same workload on RocksDB (benches/rocksdb/lsm_bench.cc, Debian's librocksdb-dev), alternating runs on
# the same machine; prints each figure's median on both sides and the ratio rill/RocksDB of the medians.
# Both sides get the same key=value arguments (see benches/lsm_store.rs); each run is a fresh store.
# Usage: benches/compare_rocksdb.sh [runs=3] [pin=CPU] [keys=1e7] [value_bytes=100] [memtable_mb=8] ...
#   pin=CPU runs both under `taskset -c CPU`: one core each (RocksDB's flushes and compactions share
#   it with its foreground thread, as rill's do on its shard's executor). Unpinned, RocksDB's background
#   threads use the other cores.
# e.g.   benches/compare_rocksdb.sh runs=3 keys=1000000
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3
pin=""
args=()
for arg in "$@"; do
  case "$arg" in
    runs=*) runs=${arg#runs=} ;;
    pin=*) pin=${arg#pin=} ;;
    *=*) args+=("$arg") ;;
    *) echo "usage: $0 [runs=N] [pin=CPU] [key=value ...] (arguments of benches/lsm_store.rs)" >&2; exit 2 ;;
  esac
done
prefix=()
[ -z "$pin" ] || prefix=(taskset -c "$pin")
cargo build --release --bench lsm_store >/dev/null 2>&1 || cargo build --release --bench lsm_store
benches/rocksdb/run.sh --compile-only

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
rill_out=$(mktemp)
rocks_out=$(mktemp)
trap 'rm -f "$rill_out" "$rocks_out"' EXIT
for ((i = 0; i < runs; i++)); do
  "${prefix[@]}" cargo bench --bench lsm_store -- "${args[@]}" runs=1 2>/dev/null | tee -a "$rill_out" | grep '^   run:' \
    | sed "s/^   run:/   rill $((i + 1)):/"
  "${prefix[@]}" benches/rocksdb/run.sh "${args[@]}" runs=1 | tee -a "$rocks_out" | grep '^   run:' \
    | sed "s/^   run:/   rocksdb $((i + 1)):/"
done

# "name unit value" for every figure row of every run.
rows() { awk '/^   figure / { table = 1; next } table && NF == 4 { print $1, $2, $3 } /^==/ { table = 0 }' "$1"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "NaN" }'; }

echo "== LSM store, rill vs RocksDB: median of $runs alternating runs${pin:+, both pinned to CPU $pin}"
echo "   load average before: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
grep -m1 '^   [0-9]* keys' "$rill_out" || true
grep -m1 '^   memory' "$rill_out" | sed 's/^   memory/   rill memory/' || true
grep -m1 '^   memory' "$rocks_out" | sed 's/^   memory/   RocksDB memory/' || true
grep -m1 '^== ' "$rocks_out" | sed 's/^== LSM store: /   /' || true
printf '   %-30s %10s %14s %14s %12s %7s   %s\n' figure unit rill RocksDB rill/RocksDB better "runs (rill | RocksDB)"
rows "$rill_out" | awk '!seen[$1]++ { print $1, $2 }' | while read -r name unit; do
  rill_runs=$(rows "$rill_out" | awk -v n="$name" '$1 == n { print $3 }')
  rocks_runs=$(rows "$rocks_out" | awk -v n="$name" '$1 == n { print $3 }')
  rill_median=$(median <<<"$rill_runs")
  rocks_median=$(median <<<"$rocks_runs")
  ratio=$(awk -v r="$rill_median" -v k="$rocks_median" 'BEGIN { if (k > 0) printf "%.2f", r / k; else print "n/a" }')
  case "$unit" in ops/s | entries/s) better=higher ;; *) better=lower ;; esac
  printf '   %-30s %10s %14s %14s %12s %7s   %s | %s\n' "$name" "$unit" "$rill_median" "$rocks_median" "$ratio" \
    "$better" "$(tr '\n' ' ' <<<"$rill_runs" | sed 's/ $//')" "$(tr '\n' ' ' <<<"$rocks_runs" | sed 's/ $//')"
done
