#!/usr/bin/env bash
# Side-by-side comparison: the same `sse-loadgen scale` against sse-server and the peers under
# scripts/peers/, one after the other, on the same machine with the same settings.
#
#   ./scripts/compare.sh [options]
#
# Servers (scripts/peers/README.md says how each is written):
#   ours       sse-server
#   go         Go net/http, goroutine + channel per client
#   axum       Rust tokio + axum Sse + broadcast channel
#   node       Node.js node:http, a Set of responses
#   nchan      nginx + the nchan module
#   gin        Gin's SSE example: broker goroutine, channel per client, c.Stream + c.SSEvent
#   echo       echo's SSE cookbook: a handler that writes and flushes per event
#   flask      Flask streaming generator over a queue per client, gunicorn gevent worker
#   pushpin    Pushpin + an origin answering with GRIP hold headers (all its processes measured)
#   starlette  sse-starlette EventSourceResponse over an asyncio queue per client, uvicorn
# Each is started by this script on its own 127.0.0.1 port, given the same --threads where it
# has the choice, measured, and stopped (its whole process tree) before the next one starts;
# every step gets a fresh server process (see --reuse-server). A server that fails to build,
# start, or dies during its run is reported and the others go on; a step it did not complete
# keeps a row in the summary and the detail tables, with what stopped it (stopped.jsonl).
# Writes bench-results/<date>-<host>/: README.md (command, commit, machine, versions, status of
# each server, where ours stands against the best peer at the largest step, as ratios, and the
# targets), results.jsonl (every server's JSON lines), stopped.jsonl (the steps a server did not
# complete, a peer that failed to build included), summary.md and SVG plots (`sse-loadgen
# report`), and each server's build, server and loadgen logs; a run of every server (the
# default) also rewrites README.md's comparison section. The defaults (10 servers, steps
# 1k,5k,10k,15k, low-rate latency, rate search, and a 5 s overload burst at the top step) take
# about 6 minutes per server on 2 cores, so about an hour in all.
#
# Options:
#   --peers LIST         which peers to measure against ours, in order (default all of them:
#                        go,axum,node,nchan,gin,echo,flask,pushpin,starlette)
#   --servers LIST       which servers, in order, ours included or not
#                        (default ours,go,axum,node,nchan,gin,echo,flask,pushpin,starlette)
#   --base-port N        ports N+1, N+2, ... one per server (default 18180)
#   --cooldown S         pause between servers so sockets in TIME_WAIT and caches settle (default 5)
#   --out DIR            result folder (default bench-results/<date>-<host>, -2... if taken)
#   --no-build           use what is built: no install-peers.sh (apt-get, pip) and no workspace
#                        build unless sse-server is missing; each peer's own build step still
#                        runs (go build, cargo for axum, a venv for flask and starlette when
#                        missing or stale)
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
source "$ROOT/scripts/lib/peers.sh"
source "$ROOT/scripts/lib/loadgen.sh"

command_line="./scripts/compare.sh $(quote_command "$@")"
servers="$(IFS=,; echo "${ALL_SERVERS[*]}")"
base_port="${SSE_COMPARE_BASE_PORT:-18180}"
cooldown=5
out=""
build=1
while (($#)); do
  bench_option "$@"
  if ((BENCH_SHIFT)); then
    shift "$BENCH_SHIFT"
    continue
  fi
  case "$1" in
    --servers) servers="$2"; shift 2 ;;
    --peers) servers="ours,$(tr , '\n' <<<"$2" | grep -vx ours | paste -sd,)"; shift 2 ;;
    --base-port) base_port="$2"; shift 2 ;;
    --cooldown) cooldown="$2"; shift 2 ;;
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
IFS=, read -ra wanted <<<"$servers"
for name in "${wanted[@]}"; do
  [[ " ${ALL_SERVERS[*]} " == *" $name "* ]] || die "unknown server '$name' (known: ${ALL_SERVERS[*]})"
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

out="${out:-$(result_dir "")}"
mkdir -p "$out"
json="$out/results.jsonl"

# Install and build every requested peer first, so a build never runs while another server
# is being measured. install-peers.sh says what failed; each build's output goes to
# NAME.build.log, and a server that did not build keeps a row for every step (stopped.jsonl).
declare -A status version command cpu_busy
if ((build)); then
  peers="$(printf '%s\n' "${wanted[@]}" | grep -vx ours | paste -sd, || true)"
  [[ -z "$peers" ]] || "$ROOT/scripts/install-peers.sh" --servers "$peers" || true
fi
for name in "${wanted[@]}"; do
  if ! server_build "$name" >"$out/$name.build.log" 2>&1; then
    status[$name]="not built (see $name.build.log; scripts/install-peers.sh --servers $name installs what it needs)"
    why="not built: $(log_reasons "$out/$name.build.log" 1)"
    [[ "$why" != "not built: " ]] || why="not built (see $name.build.log)"
    record_shortfalls "$name" "$BENCH_STEPS" "$json" "$out" "$why" 999999999 999999999 \
      "$(wc -l 2>/dev/null <"$json" || echo 0)"
  fi
  [[ -s "$out/$name.build.log" ]] || rm -f "$out/$name.build.log"
  version[$name]="$(server_version "$name")"
done
trap 'server_stop' EXIT
trap 'exit 130' INT TERM
started=$SECONDS

index=0
for name in "${wanted[@]}"; do
  index=$((index + 1))
  [[ -z "${status[$name]:-}" ]] || {
    warn "$name: ${status[$name]}"
    continue
  }
  port=$((base_port + index))
  log "== $name on 127.0.0.1:$port, $BENCH_THREADS threads: $(server_describe "$name" "$BENCH_THREADS")"
  cpu_busy[$name]="$(cpu_busy_percent 1)%"
  measure_server "$name" "$port" "$json" "$out" || warn "$name: $MEASURE_STATUS"
  status[$name]="$MEASURE_STATUS"
  command[$name]="$(printf '%s\n' "${MEASURE_COMMANDS[@]}")"
  log "$name: ${status[$name]}"
  ((index == ${#wanted[@]})) || sleep "$cooldown"
done
elapsed=$((SECONDS - started))

if [[ -s "$json" ]]; then
  # A half-written summary is worse than none: the README then says there is no summary.
  loadgen_report "$json" "$out" || {
    warn "sse-loadgen report failed"
    rm -f "$out/summary.md"
  }
else
  warn "no server produced results"
fi

readme="$out/README.md"
{
  echo "# sse-server against its peers, $(date -u +%Y-%m-%d)"
  echo
  echo "Written by \`scripts/compare.sh\`; nothing here is typed by hand. The load generator runs"
  echo "on the same machine as each server and shares its cores; servers run one at a time."
  echo
  echo "## Command"
  echo
  echo '```sh'
  echo "$command_line"
  echo "# which ran, for each server:"
  for name in "${wanted[@]}"; do
    [[ -z "${command[$name]:-}" ]] || echo "${command[$name]}"
  done
  echo '```'
  echo
  echo "Measuring took $((elapsed / 60)) min $((elapsed % 60)) s."
  echo
  echo "## Settings"
  echo
  settings_markdown
  echo
  echo "## Servers"
  echo
  echo "| server | versions | how it is written | result of this run | CPU busy in the second before its run |"
  echo "| --- | --- | --- | --- | --- |"
  for name in "${wanted[@]}"; do
    echo "| $name | ${version[$name]} | $(server_describe "$name" "$BENCH_THREADS") | ${status[$name]:-not run} | ${cpu_busy[$name]:-} |"
  done
  echo
  echo "The last column is the share of all $(nproc) cores that was busy just before the server"
  echo "started, after the previous server stopped: a few percent on a quiet machine. More means"
  echo "something else was using the CPU, and with client and server sharing the cores, that"
  echo "run's latency and rate figures are not comparable with a quiet one."
  echo
  echo "Sources of the peers: [scripts/peers/](../../scripts/peers/)."
  echo
  echo "## Machine"
  echo
} >"$readme"
write_environment "$readme"
{
  echo
  echo "## Against the peers"
  echo
  if [[ -s "$json" ]]; then
    stopped=()
    [[ -s "$out/stopped.jsonl" ]] && stopped=("$out/stopped.jsonl")
    jq -s -r -f "$ROOT/scripts/lib/targets.jq" "$json" "${stopped[@]}" >"$out/targets.md" ||
      echo "(the comparison with the peers failed)" >"$out/targets.md"
    cat "$out/targets.md"
  else
    echo "No results."
  fi
  echo
  summary_markdown "$out" "$json" "No summary: see the logs in this folder."
  echo "Raw data: [results.jsonl](results.jsonl), one JSON object per server and step."
} >>"$readme"

# The README's comparison is of every server: a run of some (--servers, --peers) keeps its
# results folder but leaves the README's section as it is, so the text around it stays true.
if [[ "$servers" == "$(IFS=,; echo "${ALL_SERVERS[*]}")" ]]; then
  readme_section_content "$out" "$out/targets.md" >"$out/.readme-section.md"
  update_readme_section compare "$out/.readme-section.md" "$out"
  rm -f "$out/.readme-section.md"
else
  log "README.md: comparison section left as it is (this run measured $servers, not every server)"
fi
log "results: ${out#"$ROOT"/}"
failed=0
for name in "${wanted[@]}"; do
  case "${status[$name]:-}" in
    ok*) log "  $name: ${status[$name]}" ;;
    *)
      warn "  $name: ${status[$name]:-not run}"
      failed=1
      ;;
  esac
done
exit "$failed"
