#!/usr/bin/env bash
# Does an open console cost the fan-out anything? Measures sse-server with and without one.
#
#   ./scripts/console-bench.sh [options]
#
# Runs `sse-loadgen fanout` against a fresh sse-server per run, alternating two conditions for
# --rounds rounds, so both share whatever else the machine is doing (odd rounds run them in one
# order, even rounds in the other, so neither always goes first):
#   - `without console`: nobody subscribes to `$stats`, so the stats source publishes nothing;
#   - `with console`: one stream of `$stats` is open throughout (`sse-loadgen watch`, reading what
#     a console tab reads), so the figures are sampled and published once a second.
# It also reads the CPU time of the server's `console-stats` thread from /proc (schedstat, ns)
# at the end of each run: what sampling and publishing the figures cost directly.
# Writes bench-results/<date>-<host>-console/: README.md (commands, machine, the medians of each
# condition and their ratio), results.jsonl (the fanout reports), stats-thread.jsonl (that
# thread's CPU per run), watch-*.jsonl (the figures the watcher received) and the server and
# loadgen logs.
#
# Options:
#   --connections N      subscribers per run (default 3k)
#   --events N           events per run (default 400)
#   --rate R             events per second (default 100)
#   --rounds N           rounds of both conditions (default 8)
#   --port N             port for sse-server on 127.0.0.1 (default 18470)
#   --out DIR            result folder (default bench-results/<date>-<host>-console, -2... if taken)
#   --no-build           use the binaries already built
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
source "$ROOT/scripts/lib/peers.sh"
source "$ROOT/scripts/lib/loadgen.sh"

command_line="./scripts/console-bench.sh $(quote_command "$@")"
connections=3k
events=400
rate=100
rounds=8
port=18470
out=""
build=1
while (($#)); do
  case "$1" in
    --connections) connections="$2"; shift 2 ;;
    --events) events="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

for tool in curl jq; do
  command -v "$tool" >/dev/null || ensure_apt "$tool" || die "$tool is missing and could not be installed"
done
record_source
raise_nofile
((build)) && build_workspace
[[ -x "$(loadgen_bin)" ]] || die "$(loadgen_bin) is missing (run without --no-build)"

out="${out:-$(result_dir -console)}"
mkdir -p "$out"
json="$out/results.jsonl"
WATCH_PID=""
stop_watch() {
  if [[ -n "$WATCH_PID" ]]; then
    kill "$WATCH_PID" 2>/dev/null || true
    wait "$WATCH_PID" 2>/dev/null || true
    WATCH_PID=""
  fi
}
trap 'stop_watch; server_stop' EXIT
trap 'exit 130' INT TERM

metric() { curl -fsS "http://127.0.0.1:$port/metrics" | awk -v name="$1" '$1 == name { print $2 }'; }

# Nanoseconds the server's console-stats thread has run on a CPU (first field of its schedstat).
stats_thread_cpu_ns() {
  local task
  for task in /proc/"$SERVER_PID"/task/*; do
    if [[ "$(cat "$task/comm" 2>/dev/null)" == console-stats ]]; then
      cut -d' ' -f1 "$task/schedstat"
      return
    fi
  done
  echo null
}

fanout_args=(fanout --url "http://127.0.0.1:$port/events?topic=bench" --connections "$connections"
  --events "$events" --rate "$rate" --threads "$BENCH_THREADS" --json results.jsonl --quiet)
commands=()
for round in $(seq 1 "$rounds"); do
  order=("without console" "with console")
  ((round % 2)) || order=("with console" "without console")
  for condition in "${order[@]}"; do
    server_start ours "$port" "$BENCH_THREADS" "$out/server.log" || die "sse-server did not start (see $out/server.log)"
    watch_file=""
    if [[ "$condition" == "with console" ]]; then
      watch_file="$out/watch-$round.jsonl"
      "$(loadgen_bin)" watch "http://127.0.0.1:$port/events?topic=%24stats" --json >"$watch_file" 2>>"$out/loadgen.log" &
      WATCH_PID=$!
      for _ in $(seq 100); do
        [[ "$(metric sse_stats_watchers)" == 1 ]] && break
        sleep 0.1
      done
      [[ "$(metric sse_stats_watchers)" == 1 ]] || die "the \$stats watcher did not connect"
    fi
    log "round $round, $condition: sse-loadgen $(quote_command "${fanout_args[@]}")"
    (cd "$out" && "$(loadgen_bin)" "${fanout_args[@]}" --label "$condition" --scenario "round $round" \
      --server-pid "$SERVER_PID") >>"$out/loadgen.log" 2>&1 || warn "round $round ($condition): sse-loadgen failed (see loadgen.log)"
    watchers="$(metric sse_stats_watchers)"
    printf '{"round":%s,"condition":"%s","stats_thread_cpu_ns":%s,"server_uptime_s":%s}\n' "$round" "$condition" \
      "$(stats_thread_cpu_ns)" "$(ps -o etimes= -p "$SERVER_PID" | tr -d ' ')" >>"$out/stats-thread.jsonl"
    stop_watch
    server_stop
    if [[ -n "$watch_file" ]]; then
      log "round $round, $condition: the watcher received $(grep -c '"event":"stats"' "$watch_file" || true) figures events; $watchers watcher(s) at the end"
    fi
  done
done
commands+=("sse-server --listen 127.0.0.1:$port --threads $BENCH_THREADS --demo-interval 0   # a fresh one per run")
commands+=("sse-loadgen watch 'http://127.0.0.1:$port/events?topic=%24stats' --json   # with console only")
commands+=("sse-loadgen $(quote_command "${fanout_args[@]}") --label CONDITION --scenario 'round N' --server-pid PID")

[[ -s "$json" ]] || die "no results in $json"
watched="$(cat "$out"/watch-*.jsonl 2>/dev/null | grep -c '"event":"stats"' || true)"
summary="$(jq -s -r '
  def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
    else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def fig($rows; $f): [$rows[] | .[$f] | select(. != null)] | median;
  def num: if . == null then "n/a" elif . == (. | floor) then tostring else (. * 1000 | round / 1000 | tostring) end;
  def ratio($a; $b): if $a == null or $b == null or $a == 0 then "n/a" else ($b / $a * 1000 | round / 1000 | tostring) end;
  (map(select(.label == "without console"))) as $off
  | (map(select(.label == "with console"))) as $on
  | ["| figure (median of \($off | length) / \($on | length) runs) | without console | with console | with / without |",
     "| --- | --: | --: | --: |"]
  + ([["connections open", "connections_open"],
      ["deliveries", "deliveries"],
      ["lost", "lost"],
      ["latency p50, µs", "latency_p50_us"],
      ["latency p99, µs", "latency_p99_us"],
      ["latency max, µs", "latency_max_us"],
      ["last subscriber p99, ms", "last_subscriber_p99_ms"],
      ["deliveries/s", "deliveries_per_sec"],
      ["server CPU s per million deliveries", "server_cpu_s_per_million_deliveries"],
      ["server RSS per connection, B", "server_rss_per_conn_bytes"]]
     | map(fig($off; .[1]) as $a | fig($on; .[1]) as $b
       | "| \(.[0]) | \($a | num) | \($b | num) | \(ratio($a; $b)) |"))
  | join("\n")' "$json")"
per_run="$(jq -r '"| \(.scenario) | \(.label) | \(.connections_open) | \(.deliveries) | \(.lost) | \(.latency_p50_us) | \(.latency_p99_us) | \(.server_cpu_s_per_million_deliveries // null | if . == null then "n/a" else (. * 1000 | round / 1000) end) |"' "$json")"
thread="$(jq -s -r '
  def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
    else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  map(select(.stats_thread_cpu_ns != null)) | group_by(.condition) | map(
    "| \(.[0].condition) | \(map(.stats_thread_cpu_ns / 1000) | median | round) | \(map(.server_uptime_s) | median) | \(map(.stats_thread_cpu_ns / 1000 / .server_uptime_s) | median | . * 10 | round / 10) |")
  | join("\n")' "$out/stats-thread.jsonl")"

{
  echo "# Console cost check, $(date -u +%Y-%m-%d)"
  echo
  echo "Written by \`scripts/console-bench.sh\`; nothing here is typed by hand."
  echo
  echo "## Command"
  echo
  echo '```sh'
  echo "$command_line"
  echo "# which ran, per round and condition:"
  printf '%s\n' "${commands[@]}"
  echo '```'
  echo
  echo "## Settings"
  echo
  echo "- $connections subscribers of one topic, $events events at $rate/s (64-byte data), $rounds rounds of both conditions (odd rounds without first, even rounds with first), a fresh server per run"
  echo "- with console: one \`\$stats\` stream open during the whole run (what a console tab reads); the watchers received $watched figures events in all"
  echo "- server threads: $BENCH_THREADS; the load generator shares the cores with the server"
  echo
  echo "## Summary"
  echo
  echo "$summary"
  echo
  echo "## The stats thread's own CPU"
  echo
  echo "| condition | console-stats thread CPU per run, µs (median) | server uptime per run, s | µs per second |"
  echo "| --- | --: | --: | --: |"
  echo "$thread"
  echo
  echo "## Runs"
  echo
  echo "| round | condition | open | deliveries | lost | p50 µs | p99 µs | server CPU s / M deliveries |"
  echo "| --- | --- | --: | --: | --: | --: | --: | --: |"
  echo "$per_run"
  echo
  echo "## Machine"
  echo
} >"$out/README.md"
write_environment "$out/README.md"
log "wrote $out/README.md"
echo "$summary"
