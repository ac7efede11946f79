#!/usr/bin/env bash
# Compiles benches/rocksdb/lsm_bench.cc against Debian's librocksdb-dev (installed with apt-get on first
# use; needs root) and runs it with the given key=value arguments: the workload of benches/lsm_store.rs.
# Usage: benches/rocksdb/run.sh [keys=1e7] [value_bytes=100] [memtable_mb=8] [runs=3] [gets=1e6] ...
#        benches/rocksdb/run.sh --compile-only
# Debian's library is built without NDEBUG (assertions and test sync points compiled in; see lsm_bench.cc).
# Env: ROCKSDB_BENCH_BIN (the compiled program; default ${TMPDIR:-/tmp}/rill-rocksdb-lsm-bench).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -e /usr/include/rocksdb/db.h ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "librocksdb-dev is not installed: apt-get install -y librocksdb-dev (as root)" >&2
    exit 1
  fi
  apt-get install -y librocksdb-dev >/dev/null || { apt-get update >/dev/null && apt-get install -y librocksdb-dev >/dev/null; }
fi
bin=${ROCKSDB_BENCH_BIN:-${TMPDIR:-/tmp}/rill-rocksdb-lsm-bench}
if [ ! -x "$bin" ] || [ "$here/lsm_bench.cc" -nt "$bin" ]; then
  g++ -std=c++17 -O2 -o "$bin.tmp" "$here/lsm_bench.cc" -lrocksdb -lpthread
  mv "$bin.tmp" "$bin"
fi
[ "${1:-}" != --compile-only ] || exit 0
exec "$bin" "$@"
