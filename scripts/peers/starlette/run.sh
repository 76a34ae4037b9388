#!/usr/bin/env bash
# Starts the sse-starlette peer in the foreground: scripts/peers/starlette/run.sh PORT THREADS.
# exec replaces this shell, so a caller's $! is uvicorn.
#
# One uvicorn process (one asyncio event loop, uvloop) whatever THREADS says, for the reason
# the Node peer has one: the subscriber set lives in the process's memory, and `--workers N`
# would split subscribers over processes that a publish reaching one never sees.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port="${1:-${PORT:-8089}}"
threads="${2:-${THREADS:-$(nproc)}}"
"$here/../lib/python-venv.sh" "$here"
ulimit -n "$(ulimit -Hn)"
echo "starlette peer: uvicorn, 1 process (THREADS=$threads unused), http://127.0.0.1:$port" >&2
cd "$here"
exec "$here/.venv/bin/uvicorn" --host 127.0.0.1 --port "$port" --backlog 4096 \
  --no-access-log --timeout-graceful-shutdown 3 app:app
