# shellcheck shell=bash
# The benchmark settings shared by scripts/bench.sh and scripts/compare.sh, their command-line
# options, and how sse-loadgen is run with them. Source it after lib/common.sh.
#
#   bench_option ARGS...    handles one shared option at the front of ARGS; sets BENCH_SHIFT to
#                           how many words it used (0: not a shared option)
#   bench_options_help      the help lines of the shared options
#   fit_steps               clips BENCH_STEPS to what the open-file limit allows, saying so
#   top_step                the largest of BENCH_STEPS, as written there (e.g. 15k)
#   loadgen_bin             the sse-loadgen binary
#   loadgen_scale LABEL PORT PID JSON LOG [STEPS]
#                           runs `sse-loadgen scale` against 127.0.0.1:PORT at STEPS (default
#                           BENCH_STEPS), appending to JSON; with the overload phase
#                           (BENCH_OVERLOAD) at the top step only, when STEPS hold it;
#                           progress goes to the terminal and LOG; bounded by BENCH_TIMEOUT
#   loadgen_report JSON DIR runs `sse-loadgen report` (summary.md + SVGs) and prints the table;
#                           appends to summary.md the steps a server did not complete
#                           (DIR/stopped.jsonl, lib/stopped.jq)
#   settings_markdown       the settings as a markdown list

# Defaults; each has an environment twin so CI or a user can change them without flags.
BENCH_STEPS="${SSE_BENCH_STEPS:-1k,5k,10k,15k}"
BENCH_EVENTS="${SSE_BENCH_EVENTS:-50}"
BENCH_RATE="${SSE_BENCH_RATE:-5}"
BENCH_PAYLOAD="${SSE_BENCH_PAYLOAD:-64}"
BENCH_THREADS="${SSE_BENCH_THREADS:-$(nproc)}"
BENCH_RATE_SEARCH="${SSE_BENCH_RATE_SEARCH:-1}"
BENCH_SEARCH_EVENTS="${SSE_BENCH_SEARCH_EVENTS:-20}"
BENCH_SEARCH_PHASE="${SSE_BENCH_SEARCH_PHASE:-2s}"
BENCH_MAX_P99="${SSE_BENCH_MAX_P99:-1s}"
BENCH_CONNECT_RATE="${SSE_BENCH_CONNECT_RATE:-20k}"
BENCH_SOURCE_IPS="${SSE_BENCH_SOURCE_IPS:-127.0.0.1-127.0.0.4}"
BENCH_TIMEOUT="${SSE_BENCH_TIMEOUT:-900}"
BENCH_REUSE_SERVER="${SSE_BENCH_REUSE_SERVER:-0}"
# The overload phase at the top step: publishing back to back for this long ("" or 0: off).
BENCH_OVERLOAD="${SSE_BENCH_OVERLOAD:-5s}"
BENCH_OVERLOAD_DRAIN="${SSE_BENCH_OVERLOAD_DRAIN:-60s}"
BENCH_EXTRA=()
# How many words bench_option used; the caller shifts them.
export BENCH_SHIFT=0

bench_option() {
  BENCH_SHIFT=2
  case "$1" in
    --steps | --events | --rate | --payload | --threads | --search-events | --search-phase | --max-p99 | \
      --connect-rate | --source-ips | --timeout | --overload | --overload-drain)
      (($# >= 2)) || die "$1 needs a value" ;;
  esac
  case "$1" in
    --steps) BENCH_STEPS="$2" ;;
    --events) BENCH_EVENTS="$2" ;;
    --rate) BENCH_RATE="$2" ;;
    --payload) BENCH_PAYLOAD="$2" ;;
    --threads) BENCH_THREADS="$2" ;;
    --search-events) BENCH_SEARCH_EVENTS="$2" ;;
    --search-phase) BENCH_SEARCH_PHASE="$2" ;;
    --max-p99) BENCH_MAX_P99="$2" ;;
    --connect-rate) BENCH_CONNECT_RATE="$2" ;;
    --source-ips) BENCH_SOURCE_IPS="$2" ;;
    --timeout) BENCH_TIMEOUT="$2" ;;
    --overload) BENCH_OVERLOAD="$2" ;;
    --overload-drain) BENCH_OVERLOAD_DRAIN="$2" ;;
    --no-overload) BENCH_OVERLOAD="" BENCH_SHIFT=1 ;;
    --no-rate-search) BENCH_RATE_SEARCH=0 BENCH_SHIFT=1 ;;
    --rate-search) BENCH_RATE_SEARCH=1 BENCH_SHIFT=1 ;;
    --reuse-server) BENCH_REUSE_SERVER=1 BENCH_SHIFT=1 ;;
    --) shift; BENCH_EXTRA=("$@"); BENCH_SHIFT=$(($# + 1)) ;;
    *) BENCH_SHIFT=0 ;; # read by the caller
  esac
}

bench_options_help() {
  cat <<EOF
  --steps LIST         connection counts, in order (default $BENCH_STEPS; env SSE_BENCH_STEPS)
  --events N           events per step at the low rate (default $BENCH_EVENTS; SSE_BENCH_EVENTS)
  --rate R             the low, steady publish rate in events/s (default $BENCH_RATE; SSE_BENCH_RATE)
  --payload BYTES      event data size (default $BENCH_PAYLOAD; SSE_BENCH_PAYLOAD)
  --threads N          server threads/workers, the same for every server (default $BENCH_THREADS = cores)
  --no-rate-search     skip the search for the highest loss-free delivery rate
  --search-events N    fewest events per rate-search phase (default $BENCH_SEARCH_EVENTS)
  --search-phase DUR   length of a rate-search phase (default $BENCH_SEARCH_PHASE)
  --max-p99 DUR        a search phase fails past this p99 (default $BENCH_MAX_P99)
  --connect-rate N     subscribers opened per second (default $BENCH_CONNECT_RATE)
  --source-ips RANGE   client source addresses (default $BENCH_SOURCE_IPS; "" for none)
  --timeout S          longest loadgen run per step, in seconds (default $BENCH_TIMEOUT)
  --overload DUR       at the top step, after the rate search, publish back to back for DUR
                       and measure that burst's delivery (default $BENCH_OVERLOAD; SSE_BENCH_OVERLOAD)
  --overload-drain DUR how long the overload phase waits for the deliveries owed (default
                       $BENCH_OVERLOAD_DRAIN)
  --no-overload        no overload phase
  --reuse-server       run every step in one server process (default: a fresh one per step,
                       so memory freed by a smaller step cannot hide a larger step's cost)
  -- ARGS...           passed to \`sse-loadgen scale\` as they are
EOF
}

loadgen_bin() { printf '%s\n' "$(target_dir)/release/sse-loadgen"; }

top_step() {
  local steps=() step top="" max=-1 n
  IFS=, read -ra steps <<<"$BENCH_STEPS"
  for step in "${steps[@]}"; do
    n="$(parse_count "$step")"
    ((n <= max)) || { max=$n; top=$step; }
  done
  printf '%s\n' "$top"
}

# Whether the overload phase is on: BENCH_OVERLOAD is set and not zero.
overload_on() { [[ -n "$BENCH_OVERLOAD" && ! "$BENCH_OVERLOAD" =~ ^0+(s|ms|m)?$ ]]; }

# The loadgen opens every subscriber in worker processes of its own (--processes 0 picks how
# many the open-file limit needs), but each server is one process tree under the same
# per-process limit, so the largest step a server can hold is a little under that limit.
fit_steps() {
  local limit max kept=() steps=() step n
  limit="$(ulimit -Hn)"
  max=$((limit - 256))
  IFS=, read -ra steps <<<"$BENCH_STEPS"
  for step in "${steps[@]}"; do
    n="$(parse_count "$step")"
    if ((n > max)); then
      warn "step $step needs $n descriptors in the server; the open-file limit is $limit: skipped"
    else
      kept+=("$step")
    fi
  done
  ((${#kept[@]})) || die "no step fits the open-file limit ($limit)"
  BENCH_STEPS="$(IFS=,; echo "${kept[*]}")"
}

loadgen_scale() {
  local label="$1" port="$2" pid="$3" json="$4" logfile="$5" step_list="${6:-$BENCH_STEPS}"
  local args=(scale
    --url "http://127.0.0.1:$port/events?topic=bench"
    --publish-url "http://127.0.0.1:$port/publish?topic=bench"
    --steps "$step_list" --events "$BENCH_EVENTS" --rate "$BENCH_RATE" --payload "$BENCH_PAYLOAD"
    --connect-rate "$BENCH_CONNECT_RATE"
    --label "$label" --json "$(basename "$json")" --server-pid "$pid")
  [[ -z "$BENCH_SOURCE_IPS" ]] || args+=(--source-ips "$BENCH_SOURCE_IPS")
  ((BENCH_RATE_SEARCH)) && args+=(--rate-search --search-events "$BENCH_SEARCH_EVENTS" --search-phase "$BENCH_SEARCH_PHASE" --max-p99 "$BENCH_MAX_P99")
  # The overload phase at the top step only; a group of steps without it runs none.
  local top
  top="$(top_step)"
  if overload_on && [[ ",$step_list," == *",$top,"* ]]; then
    args+=(--overload "$BENCH_OVERLOAD" --overload-drain "$BENCH_OVERLOAD_DRAIN" --overload-steps "$top")
  fi
  args+=("${BENCH_EXTRA[@]}")
  LOADGEN_COMMAND="sse-loadgen $(quote_command "${args[@]}")"
  log "$label: $LOADGEN_COMMAND"
  # SIGINT first so the loadgen can print what it has; SIGKILL 15 s later.
  # Run from the result folder so that the recorded command names results.jsonl, not a path.
  (cd "$(dirname "$json")" && timeout --signal=INT --kill-after=15 "$BENCH_TIMEOUT" "$(loadgen_bin)" "${args[@]}") 2>&1 |
    tee -a "$logfile"
  local status=${PIPESTATUS[0]}
  ((status != 124)) || warn "$label: the loadgen ran past --timeout $BENCH_TIMEOUT s and was stopped"
  return "$status"
}

loadgen_report() {
  local json="$1" dir="$2"
  "$(loadgen_bin)" report --input "$json" --out-dir "$dir" || return
  # The steps a server did not complete have no JSON line for the report to tabulate; their
  # table (lib/stopped.jq) follows the report's, so the summary keeps a row for each.
  if [[ -s "$dir/stopped.jsonl" && -f "$dir/summary.md" ]]; then
    { echo; echo "## Steps not completed"; echo; jq -s -r -f "$ROOT/scripts/lib/stopped.jq" "$dir/stopped.jsonl"; } >>"$dir/summary.md"
  fi
}

settings_markdown() {
  cat <<EOF
- steps (connections): $BENCH_STEPS, opened at $BENCH_CONNECT_RATE/s from ${BENCH_SOURCE_IPS:-the default source address}
- low-rate latency scenario: $BENCH_EVENTS events at $BENCH_RATE events/s, $BENCH_PAYLOAD-byte data
- rate search: $( ((BENCH_RATE_SEARCH)) && echo "on, phases of $BENCH_SEARCH_PHASE (at least $BENCH_SEARCH_EVENTS events) at doubling then bisected rates, a phase fails on any loss or p99 over $BENCH_MAX_P99" || echo off)
- overload phase: $(overload_on && echo "at the top step ($(top_step) connections), last: $BENCH_OVERLOAD of publishing back to back (the next publish when the last is answered, one in flight), then up to $BENCH_OVERLOAD_DRAIN for the deliveries owed; latency from each event's actual send time; a refused publish (503) is not owed, so never lost" || echo off)
- server threads/workers: $BENCH_THREADS (the same for every server that has the choice)
- server processes: $( ((BENCH_REUSE_SERVER)) && echo "one per server for all steps" || echo "a fresh one for each step (started, measured, stopped)")
- extra loadgen arguments: ${BENCH_EXTRA[*]:-none}
EOF
}
