#!/usr/bin/env bash
# Run a bench or example under `perf stat` and print its counters.
#
#   perf/stat.sh bench NAME   [OPTIONS] [-- ARGS...]
#   perf/stat.sh example NAME [OPTIONS] [-- ARGS...]
#
# See perf/README.md or --help.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<'EOF'
Usage: perf/stat.sh (bench|example) NAME [OPTIONS] [-- ARGS...]

Builds the bench or example (normal release/bench profile, normal target dir)
and runs it under `perf stat`: `perf stat -d` (cycles, instructions, IPC,
branches, cache misses) when the hardware PMU is available, otherwise the
software counters (task-clock, context switches, migrations, page faults).
ARGS are passed to the program (benches also get `--bench`, as with cargo bench).

Options:
  --repeat N             run N times and report mean and variance (perf stat -r N)
  --events LIST          comma-separated events instead of the defaults
  --out FILE             also write the counters to FILE
  --features LIST        cargo features to enable
  --no-bench-flag        do not append --bench to a bench's arguments
  -h, --help             this help

Works on the cargo project containing the current directory (or, outside any
cargo project, on the repository these scripts belong to).
EOF
}

[[ $# -ge 1 && ( $1 == -h || $1 == --help ) ]] && { usage; exit 0; }
[[ $# -ge 2 ]] || { usage >&2; exit 2; }

kind=$1 name=$2
shift 2
case $kind in bench | example) ;; *) usage >&2; die "first argument must be 'bench' or 'example'" ;; esac

repeat=1 events="" out_file="" bench_flag=1
cargo_args=()
prog_args=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --repeat) repeat=${2:?--repeat needs a number}; shift 2 ;;
        --events) events=${2:?--events needs a list}; shift 2 ;;
        --out) out_file=${2:?--out needs a file}; shift 2 ;;
        --features) cargo_args+=(--features "${2:?--features needs a list}"); shift 2 ;;
        --no-bench-flag) bench_flag=0; shift ;;
        -h | --help) usage; exit 0 ;;
        --) shift; prog_args=("$@"); break ;;
        *) usage >&2; die "unknown option '$1' (program arguments go after --)" ;;
    esac
done
[[ $repeat =~ ^[1-9][0-9]*$ ]] || die "--repeat must be a positive number"

root=$(project_root)
cd "$root"

ensure_perf
check_perf_access

exe=$(build_target "$kind" "$name" "$(target_dir)" "" "${cargo_args[@]}")

args=()
if [[ $kind == bench && $bench_flag -eq 0 ]]; then
    args=("${prog_args[@]}")
else
    mapfile -d '' args < <(program_args_for "$kind" "${prog_args[@]}")
fi

stat_opts=()
[[ $repeat -eq 1 ]] || stat_opts+=(-r "$repeat")
if [[ -n $events ]]; then
    stat_opts+=(-e "$events")
elif pmu_available; then
    note "hardware PMU available: perf stat -d"
    stat_opts+=(-d)
else
    note "hardware PMU unavailable (VM?): software counters only"
    stat_opts+=(-e 'task-clock,context-switches,cpu-migrations,page-faults,minor-faults,major-faults')
fi

counters=$(mktemp)
trap 'rm -f "$counters"' EXIT
stat_cmd=(perf stat "${stat_opts[@]}" -o "$counters" -- "$exe" "${args[@]}")
note "running: $(quote_cmd "${stat_cmd[@]}")"

set +e
"${stat_cmd[@]}"
status=$?
set -e

{
    echo "# $kind $name: $(quote_cmd "$exe" "${args[@]}")"
    grep -v -e '^#' -e '^[[:space:]]*$' -e '^ Performance counter stats' "$counters" | sed 's/^/  /; s/[[:space:]]*$//'
} >"$counters.out"
mv "$counters.out" "$counters"

echo >&2
cat "$counters"
if [[ -n $out_file ]]; then
    cp "$counters" "$out_file"
    note "counters written to $out_file"
fi
if [[ $status -ne 0 ]]; then
    die "the program exited with status $status"
fi
