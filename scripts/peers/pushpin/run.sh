#!/usr/bin/env bash
# Starts the Pushpin peer in the foreground: scripts/peers/pushpin/run.sh PORT THREADS.
#
# Two programs: Pushpin (its runner starts condure, zurl, pushpin-proxy and pushpin-handler) on
# 127.0.0.1:PORT, and the origin (origin.go) that every request is routed to. This shell stays
# their parent, so a caller's $! covers all of them (the benchmark measures the whole tree, as
# a user runs the whole thing); it exits when either program does, stopping the other.
#
# Ports, each 127.0.0.1 and free (checked with ss) or given: the origin's
# (PUSHPIN_ORIGIN_PORT) and the HTTP publish API's (PUSHPIN_PUBLISH_PORT, Pushpin's default
# 5561); the first free ones from PORT+100 upward otherwise. The config, routes, run files
# and logs go to PUSHPIN_DIR (default a fresh /tmp/sse-peer-pushpin.XXXXXX, printed on stderr
# and removed on exit).
# PUSHPIN_MESSAGE_RATE sets the handler's delivery rate limit (see pushpin.conf.template).
# THREADS is unused: Pushpin's processes are one each, as shipped.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port="${1:-${PORT:-8088}}"
threads="${2:-${THREADS:-$(nproc)}}"
if ! command -v pushpin >/dev/null || ! command -v condure >/dev/null || ! command -v zurl >/dev/null; then
  echo "pushpin peer: pushpin, condure or zurl is missing; run scripts/install-peers.sh" >&2
  exit 1
fi
"$here/../lib/go-gopath-build.sh" "$here" pushpin-origin

taken=" $port "
free_port() {
  local p="$1"
  while [[ "$taken" == *" $p "* ]] || ss -Htln "sport = :$p" 2>/dev/null | grep -q .; do p=$((p + 1)); done
  taken+="$p "
  echo "$p"
}
origin_port="${PUSHPIN_ORIGIN_PORT:-$(free_port $((port + 100)))}"
taken+="$origin_port "
publish_port="${PUSHPIN_PUBLISH_PORT:-$(free_port $((port + 101)))}"
for p in "$port" "$origin_port" "$publish_port"; do
  if ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then
    echo "pushpin peer: port $p is taken" >&2
    exit 1
  fi
done

ulimit -n "$(ulimit -Hn)"
dir="${PUSHPIN_DIR:-}"
own_dir=""
if [[ -z "$dir" ]]; then
  dir="$(mktemp -d /tmp/sse-peer-pushpin.XXXXXX)"
  own_dir="$dir"
fi
mkdir -p "$dir/run" "$dir/log"
sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@PUBLISH_PORT@|$publish_port|g" \
  -e "s|@MESSAGE_RATE@|${PUSHPIN_MESSAGE_RATE:-1000000}|g" \
  "$here/pushpin.conf.template" >"$dir/pushpin.conf"
echo "* 127.0.0.1:$origin_port" >"$dir/routes"
echo "pushpin peer: http://127.0.0.1:$port, origin 127.0.0.1:$origin_port," \
  "publish API 127.0.0.1:$publish_port, dir $dir (THREADS=$threads unused)" >&2

pids=()
stop() {
  trap - TERM INT EXIT
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  # A directory this script made is its own to remove; one given in PUSHPIN_DIR is the caller's.
  [[ -z "$own_dir" ]] || rm -rf "$own_dir"
}
trap 'stop; exit 0' TERM INT
trap stop EXIT
"$here/pushpin-origin" "$origin_port" "http://127.0.0.1:$publish_port/publish/" &
pids+=($!)
pushpin --config "$dir/pushpin.conf" --merge-output &
pids+=($!)
# Whichever ends first ends the peer.
wait -n
