#!/usr/bin/env bash
# A soak of sse-server: mixed and abusive traffic for a bounded time, the server sampled every
# few seconds, and a verdict.
#
#   ./scripts/soak.sh [--minutes N] [options]
#
# Builds sse-server and sse-loadgen in release, starts sse-server on 127.0.0.1 with a short
# topic TTL (so topics come and go within the soak) and runs `sse-loadgen soak` against it:
# hundreds of connects/disconnects per second, subscribers on thousands of short-lived topics
# and on a few busy ones, stuck and slow consumers, bad requests, publishes to new topics all
# along. It fails when RSS, open descriptors, sockets or topics still trend upward after the
# warm-up, when a good subscriber loses or repeats an event, or when the server stops
# answering. Results and a plot go to bench-results/<date>-<host>-soak/.
#
# Options:
#   --minutes N      how long (default 10)
#   --port N         port on 127.0.0.1 (default 18090)
#   --topic-ttl DUR  the server's --topic-ttl (default 20s; the warm-up is 4x it, at least
#                    60 s or half the soak, whichever is shorter)
#   --max-topics N   the server's --max-topics (default 1M). Live topics are about the
#                    loadgen's --fresh-rate times --topic-ttl (100,000 for --fresh-rate 10000
#                    with --topic-ttl 10s); the soak checks that every publish answers 200, so
#                    the limit must be above that
#   --out DIR        result folder (default bench-results/<date>-<host>-soak)
#   --suffix S       result folder suffix (default -soak)
#   --no-build       use the binaries already built
#   -- ARGS...       passed to `sse-loadgen soak` as they are (e.g. --fresh-rate 10000)
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
source "$ROOT/scripts/lib/peers.sh"

command_line="./scripts/soak.sh $(quote_command "$@")"
minutes=10
port=18090
ttl=20s
max_topics=1M
out=""
suffix=-soak
build=1
extra=()
while (($#)); do
  case "$1" in
    --) shift; extra=("$@"); break ;;
    --suffix) suffix="$2"; shift 2 ;;
    --minutes) minutes="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --topic-ttl) ttl="$2"; shift 2 ;;
    --max-topics) max_topics="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ "$minutes" =~ ^[0-9]+$ && "$minutes" -ge 1 ]] || die "--minutes takes a whole number of minutes (1 or more)"
ttl_s="$(sed -E 's/s$//' <<<"$ttl")"
[[ "$ttl_s" =~ ^[0-9]+$ ]] || die "--topic-ttl takes seconds, like 20s"
floor_s=$((minutes * 30 < 60 ? minutes * 30 : 60))
warmup_s=$((ttl_s * 4 > floor_s ? ttl_s * 4 : floor_s))
((warmup_s < minutes * 60)) || die "the warm-up (${warmup_s}s) must be shorter than the soak"

record_source
raise_nofile
((build)) && build_workspace
bin="$(target_dir)/release"
[[ -x "$bin/sse-server" && -x "$bin/sse-loadgen" ]] || die "release binaries missing (run without --no-build)"

out="${out:-$(result_dir "$suffix")}"
mkdir -p "$out"
server_args=(--listen "127.0.0.1:$port" --threads 2 --demo-interval 0 --topic-ttl "$ttl"
  --max-topics "$max_topics" --heartbeat 5s)
port_is_free "$port" || die "port $port is taken"
(
  ulimit -n "$(ulimit -Hn)"
  exec "$bin/sse-server" "${server_args[@]}"
) >"$out/server.log" 2>&1 &
server_pid=$!
trap 'stop_tree "$server_pid"' EXIT
trap 'exit 130' INT TERM
wait_http "http://127.0.0.1:$port/healthz" 30 "$server_pid" || die "sse-server did not start (see $out/server.log)"

soak_args=(soak --base-url "http://127.0.0.1:$port" --duration "${minutes}m" --warmup "${warmup_s}s"
  --server-pid "$server_pid" --out-dir "$out" "${extra[@]}")
log "sse-loadgen $(quote_command "${soak_args[@]}")"
status=0
"$bin/sse-loadgen" "${soak_args[@]}" 2>"$out/soak.log" || status=$?
stop_tree "$server_pid"
trap - EXIT

{
  echo "# sse-server soak, $(date -u +%Y-%m-%d)"
  echo
  echo "Written by \`scripts/soak.sh\`; nothing here is typed by hand."
  echo
  echo "## Command"
  echo
  echo '```sh'
  echo "$command_line"
  echo "# which ran:"
  echo "sse-server $(quote_command "${server_args[@]}")"
  echo "sse-loadgen $(quote_command "${soak_args[@]}")"
  echo '```'
  echo
  echo "## Result"
  echo
  if [[ -s "$out/summary.md" ]]; then cat "$out/summary.md"; else echo "No summary: the soak did not finish (see soak.log)."; fi
  echo
  echo "![RSS, descriptors, sockets and topics over the soak; the warm-up is shaded](soak.svg)"
  echo
  echo "Raw data: samples.jsonl (one sample per line), summary.json; logs: soak.log, server.log."
  echo
  echo "## Machine"
  echo
} >"$out/README.md"
write_environment "$out/README.md"
log "results: ${out#"$ROOT"/} (exit $status)"
exit "$status"
