#!/usr/bin/env bash
# Runs the coverage-guided fuzz targets in fuzz/ (cargo-fuzz, libFuzzer, no sanitizer, debug
# assertions on), each for a bounded time, and reports executions and crashes per target.
#
#   scripts/fuzz.sh [--seconds N] [--runs N] [--target T] [--fresh] [--record]
#
#   --seconds N   how long each target runs at most (default 60)
#   --runs N      stop a target after N executions instead (still bounded by --seconds)
#   --target T    run only target T (default: every target in fuzz/Cargo.toml)
#   --fresh       start from the committed seeds only (empty fuzz/work/<T>/ first)
#   --record      also write bench-results/<date>-<host>-fuzz/: README.md with the command,
#                 commit, versions, machine and per-target figures, and each target's log
#
# Installs cargo-fuzz (from crates.io) if it is missing. Every target runs at niceness 19 so
# that other builds on the machine are not starved. New corpus entries go to fuzz/work/<T>/
# (not committed); the committed seeds in fuzz/corpus/<T>/ are only read. A crashing input is
# written to fuzz/artifacts/<T>/. Exits 1 if any target crashed, timed out or ran out of memory.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
seconds=60
runs=0
only=""
record=0
fresh=0
command="scripts/fuzz.sh $*"
while (($#)); do
    case $1 in
        --seconds) seconds=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --target) only=$2; shift 2 ;;
        --record) record=1; shift ;;
        --fresh) fresh=1; shift ;;
        -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "fuzz.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    nice -n 19 cargo install --locked cargo-fuzz
fi

cd "$root/fuzz"
targets=$(cargo fuzz list)
if [[ -n $only ]]; then
    grep -qx "$only" <<<"$targets" || { echo "fuzz.sh: no target $only; targets: $targets" >&2; exit 2; }
    targets=$only
fi

# One build of every target; the binaries are then run directly so each run is bounded.
nice -n 19 cargo fuzz build -a -s none >&2
triple=$(rustc -vV | sed -n 's/^host: //p')
bin_dir="$root/fuzz/target/$triple/release"

if ((record)); then
    # The commit measured is the one the run starts from; each run gets a folder of its own.
    commit=$(git -C "$root" rev-parse HEAD)
    # This run's own files (under bench-results/) do not count as changes to what was tested.
    dirty=$(git -C "$root" status --porcelain --untracked-files=no -- . ':!bench-results' | wc -l)
    base="$root/bench-results/$(date +%F)-$(hostname)-fuzz"
    out=$base
    n=2
    while [[ -e $out ]]; do
        out="$base-$n"
        n=$((n + 1))
    done
    mkdir -p "$out"
    logs=$out
else
    logs=$(mktemp -d)
fi

# Heads and bodies are bounded at 8 KiB, so their targets get inputs long enough to cross it.
max_len() {
    case $1 in
        request_head | chunked_body) echo 12288 ;;
        *) echo 4096 ;;
    esac
}

failed=0
rows=""
printf '%-16s %12s %9s %8s %7s %8s\n' target executions exec/s corpus cov crashes >&2
for target in $targets; do
    ((fresh)) && rm -rf "work/$target"
    mkdir -p "work/$target" "artifacts/$target"
    before=$(find "artifacts/$target" -type f | wc -l)
    inherited=$(find "work/$target" -type f | wc -l)
    log="$logs/$target.log"
    args=(-max_total_time="$seconds" -max_len="$(max_len "$target")" -timeout=10
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="artifacts/$target/")
    ((runs > 0)) && args+=(-runs="$runs")
    start=$(date +%s)
    status=0
    nice -n 19 "$bin_dir/$target" "${args[@]}" "work/$target" "corpus/$target" >"$log" 2>&1 || status=$?
    elapsed=$(($(date +%s) - start))
    if ((record)); then
        # Keep the log small enough to commit: drop the line libFuzzer prints for each new or
        # reduced corpus entry; keep its start, pulses, crash reports and final stats.
        grep -vE $'^#[0-9]+\t(NEW|REDUCE) |^\tNEW_FUNC' "$log" >"$log.kept" || true
        mv "$log.kept" "$log"
    fi
    executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    per_second=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    corpus=$(grep -oE 'corp: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    crashes=$(($(find "artifacts/$target" -type f | wc -l) - before))
    if ((status != 0 && crashes == 0)); then
        crashes=1 # libFuzzer failed without leaving an artifact: count it, show the log.
    fi
    if ((crashes > 0)); then
        failed=1
        tail -40 "$log" >&2
    fi
    printf '%-16s %12s %9s %8s %7s %8s\n' >&2 "$target" "${executions:-?}" "${per_second:-?}" \
        "${corpus:-?}" "${cov:-?}" "$crashes"
    rows+="| \`$target\` | ${executions:-?} | ${per_second:-?} | $elapsed | $inherited | ${corpus:-?} | ${cov:-?} | $crashes |"$'\n'
done

if ((record)); then
    {
        echo "# Fuzz run $(date -u +'%F %H:%M UTC') on $(hostname)"
        echo
        echo "Written by \`scripts/fuzz.sh\`; every figure below is from libFuzzer's final stats."
        echo
        echo '```'
        echo "$command"
        echo '```'
        echo
        echo "- Commit: \`$commit\`$( ((dirty)) && echo " (with $dirty uncommitted changes)")"
        echo "- $(rustc -V); $(cargo fuzz --version); libFuzzer from libfuzzer-sys" \
            "$(sed -n '/name = "libfuzzer-sys"/{n;s/version = //p}' Cargo.lock | tr -d '"')"
        echo "- Build: \`cargo fuzz build -a -s none\` (release, debug assertions and overflow" \
            "checks on, no sanitizer); each target at \`nice -n 19\`, one process at a time"
        echo "- Machine: $(nproc) CPUs ($(sed -n 's/^model name\t*: //p' /proc/cpuinfo | head -1))," \
            "$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM," \
            "Linux $(uname -r); shared with other builds (load average at the end:" \
            "$(cut -d' ' -f1-3 /proc/loadavg))"
        echo "- Limits per target: \`-runs=${runs}\` (0: none), \`-max_total_time=$seconds\`," \
            "\`-timeout=10\`, \`-rss_limit_mb=2048\`; seeds from \`fuzz/corpus/<target>/\`$( ((fresh)) && echo " only (\`--fresh\`)" || echo " plus what earlier runs left in \`fuzz/work/<target>/\` (\"corpus at start\")")"
        echo
        echo "| target | executions | exec/s | seconds | corpus at start | corpus at end | coverage (edges) | crashes |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|"
        printf '%s' "$rows"
        echo
        echo "Each target's libFuzzer output is in \`<target>.log\` beside this file, without the" \
            "one line per new or reduced corpus entry."
    } >"$out/README.md"
    echo "fuzz.sh: wrote $out/README.md" >&2
else
    rm -rf "$logs"
fi
exit "$failed"
