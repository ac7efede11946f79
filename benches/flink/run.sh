#!/usr/bin/env bash
# Compiles the Flink bench jobs in this directory and runs one of them on Apache Flink 2.3.0
# (the distribution bundled in the apache-flink package on PyPI, installed into a venv on first use).
# Usage: benches/flink/run.sh RollingSumBench EVENTS PARALLELISM [KEYS] [JOB]
# Env: FLINK_VENV (default ${TMPDIR:-/tmp}/rill-flink-anchor), FLINK_BENCH_CLASSES (class output dir).
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 ClassName args...   (e.g. $0 RollingSumBench 20000000 1 10000 rolling)" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
venv=${FLINK_VENV:-${TMPDIR:-/tmp}/rill-flink-anchor}
if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv" && "$venv/bin/pip" install -q apache-flink==2.3.0; fi
lib=$("$venv/bin/python" -c 'import pyflink,os;print(os.path.join(os.path.dirname(pyflink.__file__),"lib"))')
build=${FLINK_BENCH_CLASSES:-${TMPDIR:-/tmp}/rill-flink-bench-classes}
mkdir -p "$build"
if ! out=$(javac -nowarn -d "$build" -cp "$lib/*" "$here"/*.java 2>&1); then
  echo "$out" >&2
  exit 1
fi
[ -z "$out" ] || grep -v '^Note:' <<<"$out" || true
java -Xmx4g --add-opens java.base/java.util=ALL-UNNAMED --add-opens java.base/java.lang=ALL-UNNAMED \
  -cp "$build:$lib/*" "$@" 2>&1 | { grep -v -E '^(SLF4J|WARNING)' || true; }
