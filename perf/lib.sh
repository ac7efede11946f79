# shellcheck shell=bash
# Shared helpers for perf/profile.sh and perf/stat.sh. Source it, don't run it.
#
# Conventions: helpers that produce a value print it on stdout; everything
# meant for the user goes to stderr so it never mixes with those values.

PERF_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ -t 2 ]]; then
    _bold=$'\033[1m' _yellow=$'\033[1;33m' _red=$'\033[1;31m' _reset=$'\033[0m'
else
    _bold="" _yellow="" _red="" _reset=""
fi
note() { printf '%s[perf]%s %s\n' "$_bold" "$_reset" "$*" >&2; }
warn() { printf '%s[perf] warning:%s %s\n' "$_yellow" "$_reset" "$*" >&2; }
die() { printf '%s[perf] error:%s %s\n' "$_red" "$_reset" "$*" >&2; exit 1; }

is_root() { [[ $(id -u) -eq 0 ]]; }

# Run a command as root: directly when already root, otherwise through sudo.
as_root() {
    if is_root; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        return 1
    fi
}

# The cargo project to work on: the one containing the current directory, or,
# when the current directory is not inside a cargo project, the repository
# these scripts live in.
project_root() {
    local manifest
    if manifest=$(cargo locate-project --workspace --message-format plain 2>/dev/null); then
        dirname "$manifest"
    elif [[ -f "$PERF_LIB_DIR/../Cargo.toml" ]]; then
        (cd "$PERF_LIB_DIR/.." && pwd)
    else
        die "not inside a cargo project (and no Cargo.toml next to $PERF_LIB_DIR)"
    fi
}

# The project's target directory (honours CARGO_TARGET_DIR and build.target-dir).
target_dir() {
    local dir=""
    if command -v python3 >/dev/null 2>&1; then
        dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null) || dir=""
    fi
    if [[ -z $dir ]]; then
        dir="${CARGO_TARGET_DIR:-$PWD/target}"
    fi
    printf '%s\n' "$dir"
}

# Make sure a working `perf` is on PATH, installing Debian's linux-perf if needed.
ensure_perf() {
    if command -v perf >/dev/null 2>&1 && perf --version >/dev/null 2>&1; then
        return
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        die "perf is not installed (and apt-get is unavailable): install your distribution's perf package"
    fi
    note "perf not found; installing linux-perf with apt-get"
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 ||
        ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q linux-perf >&2; then
        die "could not install linux-perf (run: sudo apt-get install linux-perf)"
    fi
    perf --version >/dev/null 2>&1 || die "perf was installed but does not run: $(perf --version 2>&1 | head -n 3)"
}

sysctl_value() { cat "/proc/sys/kernel/$1" 2>/dev/null || echo "?"; }

# Can perf sample a user process with this event? (Profiling-level check.)
perf_can_sample() {
    perf record -q -e "$1" -o /dev/null -- true >/dev/null 2>&1
}

# Check kernel.perf_event_paranoid and kernel.kptr_restrict.
# As root, relax them when they get in the way; otherwise explain how to.
check_perf_access() {
    local paranoid kptr
    paranoid=$(sysctl_value perf_event_paranoid)
    kptr=$(sysctl_value kptr_restrict)

    if ! perf_can_sample cpu-clock; then
        if is_root && [[ $paranoid != "?" && $paranoid -gt 1 ]]; then
            note "perf cannot sample with kernel.perf_event_paranoid=$paranoid; setting it to 1 (until reboot)"
            echo 1 >/proc/sys/kernel/perf_event_paranoid 2>/dev/null ||
                warn "could not write /proc/sys/kernel/perf_event_paranoid"
            paranoid=$(sysctl_value perf_event_paranoid)
        fi
        if ! perf_can_sample cpu-clock; then
            {
                echo "perf cannot sample processes here (kernel.perf_event_paranoid=$paranoid)."
                echo "Relax it, e.g.:"
                echo "    sudo sysctl -w kernel.perf_event_paranoid=1"
                echo "(persist with: echo kernel.perf_event_paranoid=1 | sudo tee /etc/sysctl.d/99-perf.conf)"
                echo "perf says: $(perf record -e cpu-clock -o /dev/null -- true 2>&1 | head -n 5)"
            } >&2
            die "insufficient permissions for perf_event_open"
        fi
    fi

    if ! is_root && [[ $paranoid != "?" && $paranoid -ge 2 ]]; then
        warn "kernel.perf_event_paranoid=$paranoid: only user-space is sampled (no kernel frames)." \
            "For kernel frames: sudo sysctl -w kernel.perf_event_paranoid=1"
    fi

    # kptr_restrict hides kernel symbol addresses: 1 = from non-root, 2 = from everyone.
    if [[ $kptr != "?" ]]; then
        if is_root && [[ $kptr -ge 2 ]]; then
            note "kernel.kptr_restrict=$kptr hides kernel symbols even from root; setting it to 1 (until reboot)"
            echo 1 >/proc/sys/kernel/kptr_restrict 2>/dev/null ||
                warn "could not write /proc/sys/kernel/kptr_restrict; kernel frames will show as [unknown]"
        elif ! is_root && [[ $kptr -ge 1 && $paranoid != "?" && $paranoid -le 1 ]]; then
            warn "kernel.kptr_restrict=$kptr: kernel frames will show as [unknown]." \
                "To resolve them: sudo sysctl -w kernel.kptr_restrict=0"
        fi
    fi
}

# Does the hardware PMU work here? (Often not inside VMs.)
pmu_available() {
    local out
    out=$(perf stat -x, -e cycles,instructions -- true 2>&1) || return 1
    # With -x, each counter line is "value,unit,event,...": a number when counted,
    # "<not supported>" / "<not counted>" otherwise.
    grep -Eq '^[0-9]+,[^,]*,cycles' <<<"$out" && grep -Eq '^[0-9]+,[^,]*,instructions' <<<"$out"
}

# The sampling event to use: hardware cycles if the PMU works, else cpu-clock.
pick_sample_event() {
    if pmu_available && perf_can_sample cycles; then
        echo cycles
    else
        echo cpu-clock
    fi
}

# Pick the compiled executable for target NAME of KIND (example|bench) out of
# cargo's --message-format=json output (read from stdin).
artifact_executable() {
    local kind=$1 name=$2
    if command -v python3 >/dev/null 2>&1; then
        python3 -c '
import json, sys
kind, name = sys.argv[1], sys.argv[2]
exe = None
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") != "compiler-artifact":
        continue
    target = msg.get("target", {})
    if target.get("name") == name and kind in target.get("kind", []) and msg.get("executable"):
        exe = msg["executable"]
print(exe or "")
' "$kind" "$name"
    else
        # Fallback without python3: cargo prints each message on one line, with
        # "target":{..."name":"NAME"...} before "executable":"PATH".
        grep '"reason":"compiler-artifact"' |
            grep "\"kind\":\[\"$kind\"\]" |
            grep "\"name\":\"$name\"" |
            sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' |
            tail -n 1
    fi
}

# build_target KIND NAME TARGET_DIR EXTRA_RUSTFLAGS [CARGO_ARGS...]
# Builds an example (release profile) or a bench (bench profile) and prints the
# path of the executable. Compiler output goes to stderr.
build_target() {
    local kind=$1 name=$2 tdir=$3 extra_rustflags=$4
    shift 4
    local -a cmd
    case $kind in
        example) cmd=(cargo build --release --example "$name") ;;
        bench) cmd=(cargo bench --no-run --bench "$name") ;;
        *) die "unknown target kind '$kind' (expected bench or example)" ;;
    esac
    cmd+=(--message-format=json-render-diagnostics "$@")

    local rustflags="${RUSTFLAGS:-}"
    if [[ -n $extra_rustflags ]]; then
        rustflags="${rustflags:+$rustflags }$extra_rustflags"
    fi

    note "building: ${cmd[*]}${rustflags:+  (RUSTFLAGS=\"$rustflags\")}  [target dir: $tdir]"
    local json exe
    if [[ -n $rustflags ]]; then
        json=$(CARGO_TARGET_DIR="$tdir" RUSTFLAGS="$rustflags" "${cmd[@]}") || die "cargo build failed"
    else
        json=$(CARGO_TARGET_DIR="$tdir" "${cmd[@]}") || die "cargo build failed"
    fi
    exe=$(artifact_executable "$kind" "$name" <<<"$json")
    [[ -n $exe && -x $exe ]] || die "could not find the built $kind '$name' in cargo's output"
    printf '%s\n' "$exe"
}

# Arguments cargo itself would pass: `cargo bench` appends --bench.
program_args_for() {
    local kind=$1
    shift
    if [[ $kind == bench ]]; then
        printf '%s\0' "$@" --bench
    else
        [[ $# -eq 0 ]] || printf '%s\0' "$@"
    fi
}

# Shell-quoted rendering of a command line, for logs and summaries.
quote_cmd() {
    local out="" arg
    for arg in "$@"; do
        if [[ $arg =~ ^[A-Za-z0-9_./:=,+@%-]+$ ]]; then
            out+="$arg "
        else
            out+="$(printf '%q' "$arg") "
        fi
    done
    printf '%s\n' "${out% }"
}
