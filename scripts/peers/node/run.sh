#!/usr/bin/env bash
# Starts the Node.js peer in the foreground: scripts/peers/node/run.sh PORT THREADS.
# One event loop (see server.js for why); THREADS sets the libuv pool size only.
# exec replaces this shell, so a caller's $! is the server.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port="${1:-${PORT:-8083}}"
threads="${2:-${THREADS:-$(nproc)}}"
if ! command -v node >/dev/null; then
  echo "node peer: node is missing; run scripts/install-peers.sh" >&2
  exit 1
fi
ulimit -n "$(ulimit -Hn)"
export UV_THREADPOOL_SIZE="$threads"
exec node "$here/server.js" "$port" "$threads"
