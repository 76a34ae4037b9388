#!/usr/bin/env bash
# Starts the Flask peer in the foreground: scripts/peers/flask/run.sh PORT THREADS.
# exec replaces this shell, so a caller's $! is gunicorn's master; its worker is its child.
#
# How it is deployed: gunicorn with one gevent worker (`-k gevent`, the asynchronous worker
# Flask's gunicorn deployment page shows). One worker whatever THREADS says, for the reason the Node
# peer has one process: the announcer lives in the worker's memory, and a second worker would
# hold other subscribers that a publish reaching the first never sees. --worker-connections
# (gunicorn's default 1000) is raised to the open-file limit, as nchan's worker_connections is;
# --graceful-timeout 1 only makes stopping it quicker, and --no-control-socket keeps it from
# creating ~/.gunicorn/gunicorn.ctl (a path every gunicorn on the machine would share).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port="${1:-${PORT:-8087}}"
threads="${2:-${THREADS:-$(nproc)}}"
"$here/../lib/python-venv.sh" "$here"
ulimit -n "$(ulimit -Hn)"
echo "flask peer: gunicorn -k gevent, 1 worker (THREADS=$threads unused), http://127.0.0.1:$port" >&2
cd "$here"
exec "$here/.venv/bin/gunicorn" --worker-class gevent --workers 1 \
  --worker-connections "$(ulimit -n)" --backlog 4096 --graceful-timeout 1 --no-control-socket \
  --bind "127.0.0.1:$port" app:app
