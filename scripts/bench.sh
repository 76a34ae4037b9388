#!/usr/bin/env bash
# The main job: measure how sse-server scales with connections on this machine.
#
#   ./scripts/bench.sh [options]
#
# Builds sse-server and sse-loadgen in release, starts sse-server on 127.0.0.1 (a fresh
# process for each step), runs `sse-loadgen scale` at the steps that fit the open-file limit
# (with the overload burst at the top step; --no-overload for none), prints the summary table, writes bench-results/<date>-<host>-bench/ (README.md with the
# exact command and the machine, results.jsonl, summary.md, SVG plots) and stops the server.
# The defaults finish in under 5 minutes on 2 cores, once built.
#
# Options:
#   --port N             port for sse-server on 127.0.0.1 (default 18080)
#   --out DIR            result folder (default bench-results/<date>-<host>-bench, -2... if taken)
#   --no-build           use the binaries already built
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
source "$ROOT/scripts/lib/peers.sh"
source "$ROOT/scripts/lib/loadgen.sh"

command_line="./scripts/bench.sh $(quote_command "$@")"
port="${SSE_BENCH_PORT:-18080}"
out=""
build=1
while (($#)); do
  bench_option "$@"
  if ((BENCH_SHIFT)); then
    shift "$BENCH_SHIFT"
    continue
  fi
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h | --help)
      usage
      bench_options_help
      exit 0
      ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

for tool in curl ss jq; do
  command -v "$tool" >/dev/null || ensure_apt "$([[ $tool == ss ]] && echo iproute2 || echo "$tool")" ||
    die "$tool is missing and could not be installed"
done
record_source
raise_nofile
fit_steps
((build)) && build_workspace
[[ -x "$(loadgen_bin)" ]] || die "$(loadgen_bin) is missing (run without --no-build)"

out="${out:-$(result_dir -bench)}"
mkdir -p "$out"
json="$out/results.jsonl"
trap 'server_stop' EXIT
trap 'exit 130' INT TERM

log "measuring sse-server on 127.0.0.1:$port with $BENCH_THREADS threads"
status=0
measure_server ours "$port" "$json" "$out" || status=1
log "sse-server: $MEASURE_STATUS"

# The instrument's own floor: one subscriber on loopback gives the latency floor, and the
# loadgen's CPU per delivery, so a reader knows its overhead.
sanity_args=(fanout --url "http://127.0.0.1:$port/events?topic=bench" --connections 1
  --events 500 --rate 100 --payload "$BENCH_PAYLOAD" --label ours --scenario "sanity: 1 connection"
  --json "$(basename "$json")" --quiet)
if server_start ours "$port" "$BENCH_THREADS" "$out/ours.server.log"; then
  log "sanity: sse-loadgen $(quote_command "${sanity_args[@]}" --server-pid "$SERVER_PID")"
  (cd "$out" && "$(loadgen_bin)" "${sanity_args[@]}" --server-pid "$SERVER_PID") >>"$out/ours.loadgen.log" 2>&1 ||
    warn "the one-connection sanity run failed (see ours.loadgen.log)"
  MEASURE_COMMANDS+=("sse-loadgen $(quote_command "${sanity_args[@]}") --server-pid PID")
  server_stop
fi

if [[ -s "$json" ]]; then
  loadgen_report "$json" "$out" || warn "sse-loadgen report failed"
  jq -s -r -f "$ROOT/scripts/lib/sanity.jq" "$json" >"$out/sanity.md" || warn "the sanity table failed"
else
  warn "the loadgen wrote no results"
  status=1
fi

{
  echo "# sse-server scaling run, $(date -u +%Y-%m-%d)"
  echo
  echo "Written by \`scripts/bench.sh\`; nothing here is typed by hand."
  echo
  echo "## Command"
  echo
  echo '```sh'
  echo "$command_line"
  echo "# which ran:"
  printf '%s\n' "${MEASURE_COMMANDS[@]:-(the loadgen did not run)}"
  echo '```'
  echo
  echo "Result: $MEASURE_STATUS."
  echo
  echo "## Settings"
  echo
  settings_markdown
  echo
  echo "## Machine"
  echo
} >"$out/README.md"
write_environment "$out/README.md"
{
  echo "| sse-server | $(server_version ours) |"
  echo
  echo "The load generator runs on the same machine as the server and shares its cores."
  echo
  if [[ -s "$out/sanity.md" ]]; then
    echo "## The instrument's floor"
    echo
    cat "$out/sanity.md"
    echo
  fi
  summary_markdown "$out" "$json" "No summary: the run did not complete (see ours.loadgen.log and ours.server.log)."
  echo "Raw data: [results.jsonl](results.jsonl) (one JSON object per step); logs: ours.loadgen.log, ours.server.log."
} >>"$out/README.md"

readme_section_content "$out" "$out/sanity.md" >"$out/.readme-section.md"
update_readme_section bench "$out/.readme-section.md" "$out"
rm -f "$out/.readme-section.md"
log "results: ${out#"$ROOT"/}"
exit "$status"
