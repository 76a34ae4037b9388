#!/usr/bin/env bash
# Publishing past what the fan-out can deliver: the rate search of `sse-loadgen fanout` at 15k
# subscribers (rates doubling until a phase fails, then bisecting), for one or more sse-server
# builds, so backpressure (--max-backlog) can be compared with a build without it in one run.
# Reports, per build, the highest loss-free deliveries/s and the p99 of each phase, in
# bench-results/<date>-<host>-overload/.
#
#   ./scripts/overload.sh [--bin LABEL=PATH ...] [--connections N] [--phase DUR]
#
# Options:
#   --bin "LABEL=PATH [ARGS]"
#                      an sse-server binary to measure, with extra server arguments
#                      (repeatable; default: this tree's release build, labelled "ours")
#   --connections N    subscribers (default 15k)
#   --phase DUR        length of each rate-search phase (default 5s)
#   --port N           port on 127.0.0.1 (default 18097)
#   --out DIR          result folder (default bench-results/<date>-<host>-overload)
#   --no-build         use the binaries already built
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
source "$ROOT/scripts/lib/peers.sh"

command_line="./scripts/overload.sh $(quote_command "$@")"
bins=()
connections=15k
phase=5s
port=18097
out=""
build=1
while (($#)); do
  case "$1" in
    --bin) bins+=("$2"); shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --phase) phase="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
record_source
raise_nofile
((build)) && build_workspace
((${#bins[@]})) || bins=("ours=$(target_dir)/release/sse-server")
out="${out:-$(result_dir -overload)}"
mkdir -p "$out"
json="$out/results.jsonl"
for entry in "${bins[@]}"; do
  label="${entry%%=*}"
  read -r -a words <<<"${entry#*=}"
  bin="${words[0]}"
  server_extra=("${words[@]:1}")
  [[ -x "$bin" ]] || die "$bin is not an executable"
  log "$label: $bin"
  server_args=(--listen "127.0.0.1:$port" --threads 2 --demo-interval 0 "${server_extra[@]}")
  (
    ulimit -n "$(ulimit -Hn)"
    exec "$bin" "${server_args[@]}"
  ) >"$out/$label.server.log" 2>&1 &
  server_pid=$!
  wait_http "http://127.0.0.1:$port/healthz" 30 "$server_pid" || die "$label did not start"
  args=(fanout --url "http://127.0.0.1:$port/events?topic=bench" --connections "$connections"
    --events 50 --rate 5 --payload 64 --rate-search --search-phase "$phase" --connect-rate 20k
    --source-ips 127.0.0.1-127.0.0.4 --label "$label" --server-pid "$server_pid" --json "$json" --quiet)
  echo "$label: $bin $(quote_command "${server_args[@]}"); sse-loadgen $(quote_command "${args[@]}")" >>"$out/commands.txt"
  "$(target_dir)/release/sse-loadgen" "${args[@]}" >"$out/$label.loadgen.log" 2>&1 || warn "$label: the loadgen failed (see $label.loadgen.log)"
  stop_tree "$server_pid"
  wait_port_free "$port" 30 || true
done

{
  echo "# Publishing past capacity, $(date -u +%Y-%m-%d)"
  echo
  echo "Written by \`scripts/overload.sh\`; nothing here is typed by hand."
  echo
  echo '```sh'
  echo "$command_line"
  cat "$out/commands.txt"
  echo '```'
  echo
  echo "Latency is measured from each event's scheduled send time (coordinated-omission safe), so"
  echo "a publish the server makes wait counts as latency too."
  echo
  echo "| build | connections | max loss-free deliveries/s | phases | rate of the last phase | its p99 | its deliveries | lost |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  jq -r '[.label, .connections_open, (.max_sustained_deliveries_per_sec // "n/a"), (.rate_search_phases | length),
      (.rate_search_phases[-1].rate // "n/a"), ((.rate_search_phases[-1].p99_us // 0) / 1000 | tostring + " ms"),
      (.rate_search_phases[-1].deliveries // "n/a"), (.rate_search_phases[-1].lost // "n/a")]
    | "| " + (map(tostring) | join(" | ")) + " |"' "$json" 2>/dev/null || echo "| (no results) |"
  echo
  echo "Every phase, per build (rate events/s, p99, passed):"
  echo
  jq -r '.label + ": " + ([.rate_search_phases[] | "\(.rate)/s \((.p99_us / 1000) | floor) ms \(if .passed then "ok" else "fail" end)"] | join(", "))' "$json" 2>/dev/null || true
  echo
  echo "## Machine"
  echo
} >"$out/README.md"
write_environment "$out/README.md"
log "results: ${out#"$ROOT"/}"
