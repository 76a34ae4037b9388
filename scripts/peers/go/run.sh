#!/usr/bin/env bash
# Builds (when the source is newer than the binary) and starts the Go peer in the foreground:
# scripts/peers/go/run.sh PORT THREADS. exec replaces this shell, so a caller's $! is the server.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port="${1:-${PORT:-8081}}"
threads="${2:-${THREADS:-$(nproc)}}"
if ! command -v go >/dev/null; then
  echo "go peer: go is missing; run scripts/install-peers.sh" >&2
  exit 1
fi
if [[ ! -x "$here/ssepeer" || "$here/main.go" -nt "$here/ssepeer" ]]; then
  (cd "$here" && GOPROXY=off go build -o ssepeer .)
fi
ulimit -n "$(ulimit -Hn)"
exec "$here/ssepeer" "$port" "$threads"
