#!/usr/bin/env bash
# Smoke test of the comparison peers, for CI: each one starts, serves one subscriber, delivers
# one published event to it, and stops. No load; the comparison itself is scripts/compare.sh.
#
#   ./scripts/smoke-peers.sh [--peers LIST]   (default gin,echo,flask,pushpin,starlette)
#
# Run scripts/install-peers.sh --peers LIST first. Every server binds 127.0.0.1 on a free port
# from 18480 up (SSE_SMOKE_BASE_PORT); each log is kept in a temp dir, printed on failure.
# Exit status: 0 when every peer passed, 1 otherwise.
set -uo pipefail
source "$(dirname "$0")/lib/common.sh"
source "$ROOT/scripts/lib/peers.sh"

peers="gin,echo,flask,pushpin,starlette"
while (($#)); do
  case "$1" in
    --peers) peers="$2"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
IFS=, read -ra wanted <<<"$peers"
for tool in curl ss; do command -v "$tool" >/dev/null || die "$tool is missing"; done
raise_nofile

work="$(mktemp -d /tmp/sse-smoke-peers.XXXXXX)"
curl_pid=""
cleanup() {
  [[ -z "$curl_pid" ]] || kill "$curl_pid" 2>/dev/null
  server_stop
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits up to S seconds for FILE to hold a line matching the extended regex RE (line ends CR
# LF, LF or CR, as the SSE format allows: sse-starlette ends its lines with CR LF).
wait_for_line() {
  local file="$1" re="$2" deadline=$((SECONDS + $3))
  until { tr '\r' '\n' <"$file"; } 2>/dev/null | grep -qE "$re"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# One peer: start, subscribe, publish, check, stop. Prints what failed; returns 1 then.
smoke() {
  local name="$1" port="$2" log="$work/$1.server.log" out="$work/$1.events" body ok=0
  body="smoke-$name-$$"
  server_build "$name" >>"$log" 2>&1 || { echo "not built (see scripts/install-peers.sh)"; return 1; }
  server_start "$name" "$port" 1 "$log" || { echo "did not start"; return 1; }
  curl -sN --max-time 30 -H 'Accept: text/event-stream' \
    "http://127.0.0.1:$port/events?topic=smoke" >"$out" 2>/dev/null &
  curl_pid=$!
  if ! wait_for_line "$out" '^:' 10; then
    echo "the subscriber got no first comment within 10 s"
  elif ! curl -fsS -o /dev/null --max-time 10 -X POST -H 'Content-Type: text/plain' \
    --data-binary "$body" "http://127.0.0.1:$port/publish?topic=smoke"; then
    echo "the publish was refused"
  elif ! wait_for_line "$out" "^data: ?$body\$" 10; then
    echo "the subscriber did not get the event within 10 s"
  else
    ok=1
  fi
  kill "$curl_pid" 2>/dev/null
  wait "$curl_pid" 2>/dev/null
  curl_pid=""
  server_stop
  ((ok))
}

port="${SSE_SMOKE_BASE_PORT:-18480}"
failed=()
for name in "${wanted[@]}"; do
  [[ " ${ALL_SERVERS[*]} " == *" $name "* && "$name" != ours ]] || die "unknown peer '$name'"
  while ! port_is_free "$port"; do port=$((port + 1)); done
  if why="$(smoke "$name" "$port")"; then
    log "$name: ok (started on 127.0.0.1:$port, one subscriber got the published event, stopped)"
  else
    warn "$name: FAILED: $why; its log:"
    sed 's/^/    /' "$work/$name.server.log" | tail -n 30 >&2
    failed+=("$name")
  fi
  port=$((port + 1))
done
rm -rf "$work"
if ((${#failed[@]})); then
  warn "peers that failed the smoke test: ${failed[*]}"
  exit 1
fi
log "every peer passed: ${wanted[*]}"
