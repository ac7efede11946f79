#!/usr/bin/env bash
# Profile a bench or example with `perf record`; write a flamegraph and a text summary.
#
#   perf/profile.sh bench NAME   [OPTIONS] [-- ARGS...]
#   perf/profile.sh example NAME [OPTIONS] [-- ARGS...]
#
# See perf/README.md or --help.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<'EOF'
Usage: perf/profile.sh (bench|example) NAME [OPTIONS] [-- ARGS...]

Builds the bench or example, runs it under `perf record`, and writes
perf.data, flamegraph.svg, summary.txt and program.txt into the output dir.
ARGS are passed to the program (benches also get `--bench`, as with cargo bench).

Options:
  --out DIR              output directory (default: perf/out/<kind>-<name>-<timestamp>)
  --freq HZ              sampling frequency (default: 999)
  --call-graph MODE      fp (default) or dwarf[,STACK_BYTES]
                         fp builds with -C force-frame-pointers=yes into <target>/perf
  --event EVENT          perf event to sample (default: cycles if the PMU works, else cpu-clock)
  --duration SECS        stop the program with SIGINT after SECS seconds
  --features LIST        cargo features to enable
  --top N                number of symbols listed in summary.txt (default: 40)
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

out_dir="" freq=999 call_graph=fp event="" duration="" top=40 bench_flag=1
cargo_args=()
prog_args=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --out) out_dir=${2:?--out needs a directory}; shift 2 ;;
        --freq) freq=${2:?--freq needs a value}; shift 2 ;;
        --call-graph) call_graph=${2:?--call-graph needs fp or dwarf}; shift 2 ;;
        --event) event=${2:?--event needs an event name}; shift 2 ;;
        --duration) duration=${2:?--duration needs seconds}; shift 2 ;;
        --features) cargo_args+=(--features "${2:?--features needs a list}"); shift 2 ;;
        --top) top=${2:?--top needs a number}; shift 2 ;;
        --no-bench-flag) bench_flag=0; shift ;;
        -h | --help) usage; exit 0 ;;
        --) shift; prog_args=("$@"); break ;;
        *) usage >&2; die "unknown option '$1' (program arguments go after --)" ;;
    esac
done
[[ $freq =~ ^[0-9]+$ ]] || die "--freq must be a number"
[[ $top =~ ^[0-9]+$ ]] || die "--top must be a number"
[[ -z $duration || $duration =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--duration must be a number of seconds"
case $call_graph in
    fp | dwarf | dwarf,[0-9]*) ;;
    *) die "--call-graph must be fp or dwarf[,STACK_BYTES]" ;;
esac

root=$(project_root)
cd "$root"

ensure_perf
check_perf_access
[[ -n $event ]] || event=$(pick_sample_event)
if [[ $event != cycles* ]]; then
    note "sampling event: $event (hardware cycles counter unavailable or not chosen)"
else
    note "sampling event: $event"
fi

# ---- flamegraph tools -------------------------------------------------------
tools_root="${XDG_CACHE_HOME:-$HOME/.cache}/rill-perf/inferno"
ensure_inferno() {
    if command -v inferno-collapse-perf >/dev/null 2>&1 && command -v inferno-flamegraph >/dev/null 2>&1; then
        return
    fi
    export PATH="$tools_root/bin:$PATH"
    if command -v inferno-collapse-perf >/dev/null 2>&1 && command -v inferno-flamegraph >/dev/null 2>&1; then
        return
    fi
    note "installing inferno into $tools_root (one-time)"
    cargo install inferno --locked --root "$tools_root" >&2 ||
        die "cargo install inferno failed"
}
ensure_inferno

# ---- build ------------------------------------------------------------------
base_target=$(target_dir)
if [[ $call_graph == fp ]]; then
    exe=$(build_target "$kind" "$name" "$base_target/perf" "-C force-frame-pointers=yes" "${cargo_args[@]}")
else
    exe=$(build_target "$kind" "$name" "$base_target" "" "${cargo_args[@]}")
fi

args=()
if [[ $kind == bench && $bench_flag -eq 0 ]]; then
    args=("${prog_args[@]}")
else
    mapfile -d '' args < <(program_args_for "$kind" "${prog_args[@]}")
fi

# ---- record -----------------------------------------------------------------
stamp=$(date +%Y%m%d-%H%M%S)
[[ -n $out_dir ]] || out_dir="$root/perf/out/$kind-$name-$stamp"
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
data="$out_dir/perf.data"

run_cmd=("$exe" "${args[@]}")
if [[ -n $duration ]]; then
    run_cmd=(timeout --foreground --signal=INT --kill-after=10 "$duration" "${run_cmd[@]}")
fi
record_cmd=(perf record -e "$event" -F "$freq" --call-graph "$call_graph" -o "$data" -- "${run_cmd[@]}")

note "running: $(quote_cmd "${record_cmd[@]}")"
note "program stdout -> $out_dir/program.txt"
start_s=$(date +%s.%N)
# Ctrl-C stops the program but not this script, so an interrupted run still
# gets its flamegraph. A trap (unlike an ignored signal) is not inherited by
# perf and the program; the tee processes do ignore SIGINT so that they keep
# copying the program's last output until it exits.
interrupted=0
trap 'interrupted=1; note "interrupted; processing what was recorded"' INT
set +e
"${record_cmd[@]}" \
    2> >(trap '' INT; exec tee "$out_dir/record.log" >&2) \
    | (trap '' INT; exec tee "$out_dir/program.txt")
statuses=("${PIPESTATUS[@]}")
set -e
trap - INT
end_s=$(date +%s.%N)
record_status=${statuses[0]}
elapsed=$(awk -v a="$start_s" -v b="$end_s" 'BEGIN { printf "%.2f", b - a }')

[[ -s $data ]] || die "perf record produced no data (exit status $record_status); see $out_dir/record.log"
if [[ -n $duration && $record_status -eq 124 ]]; then
    note "stopped after ${duration}s (--duration)"
elif [[ $interrupted -eq 1 && $record_status -eq 130 ]]; then
    : # stopped with Ctrl-C
elif [[ $record_status -ne 0 ]]; then
    warn "perf record / the program exited with status $record_status; processing the samples anyway"
fi

# ---- flamegraph ---------------------------------------------------------------
note "writing flamegraph"
perf script -i "$data" 2>"$out_dir/script.log" >"$out_dir/perf.script" ||
    die "perf script failed; see $out_dir/script.log"
inferno-collapse-perf "$out_dir/perf.script" >"$out_dir/stacks.folded"
rm -f "$out_dir/perf.script"
[[ -s $out_dir/script.log ]] || rm -f "$out_dir/script.log"
case $event in
    cpu-clock* | task-clock*) count_name=ns ;;
    *) count_name=${event%%:*} ;;
esac
inferno-flamegraph --colors rust --countname "$count_name" \
    --title "$kind $name" \
    --subtitle "$event @ ${freq} Hz, call graph: $call_graph, $(date '+%Y-%m-%d %H:%M')" \
    "$out_dir/stacks.folded" >"$out_dir/flamegraph.svg"

# ---- summary --------------------------------------------------------------------
note "writing summary"
report() { perf report -i "$data" --stdio "$@" 2>/dev/null; }
# The column header and the first N entries of a --stdio report, without
# perf's '#' preamble and trailing padding.
entries() {
    local n=$1 text
    text=$(cat)
    grep -E '^# +(Overhead|Children)' <<<"$text" | head -n 1 | sed 's/^#/ /; s/[[:space:]]*$//' || true
    grep -v -e '^#' -e '^[[:space:]]*$' <<<"$text" | head -n "$n" | sed 's/[[:space:]]*$//' || true
}

self_report=$(report --no-children -F overhead,sample,sym -g none --percent-limit 0.01)
children_report=$(report --children -F overhead_children,overhead,sym -g none --percent-limit 0.5)
dso_report=$(report --no-children -F overhead,sample,dso -g none --percent-limit 0.1)

{
    echo "kind:        $kind"
    echo "target:      $name"
    echo "project:     $root"
    echo "binary:      $exe"
    echo "command:     $(quote_cmd "${run_cmd[@]}")"
    echo "perf:        $(quote_cmd "${record_cmd[@]}")"
    echo "event:       $event"
    echo "frequency:   $freq Hz"
    echo "call graph:  $call_graph"
    echo "wall time:   ${elapsed}s (exit status $record_status)"
    echo "date:        $(date '+%Y-%m-%d %H:%M:%S %z')"
    echo "host:        $(uname -srm), $(nproc) CPUs, $(perf --version)"
    if git -C "$root" rev-parse --short HEAD >/dev/null 2>&1; then
        echo "git:         $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD 2>/dev/null || echo ' (dirty)')"
    fi
    grep -E '^# (Samples|Event count)' <<<"$self_report" | sed 's/^# //' || true
    echo
    echo "== Top $top symbols by self time =="
    echo "  (perf report --no-children, by symbol; [.] user space, [k] kernel)"
    echo
    entries "$top" <<<"$self_report"
    echo
    echo "== Top $top symbols by inclusive (children) time =="
    echo "  (perf report --children, by symbol; Children = inclusive, Overhead = self)"
    echo
    entries "$top" <<<"$children_report"
    echo
    echo "== Time by shared object =="
    echo
    entries 15 <<<"$dso_report"
} >"$out_dir/summary.txt"

cat >&2 <<EOF

[perf] done ($elapsed s, event $event)
  flamegraph: $out_dir/flamegraph.svg
  summary:    $out_dir/summary.txt
  program:    $out_dir/program.txt
  data:       $out_dir/perf.data   (perf report -i $out_dir/perf.data)
EOF
