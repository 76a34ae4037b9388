#!/usr/bin/env bash
# Builds (when the source is newer than the binary) and starts the echo peer in the foreground:
# scripts/peers/echo/run.sh PORT THREADS. exec replaces this shell, so a caller's $! is the server.
# Built offline against Debian's golang-github-labstack-echo-dev (see ../lib/go-gopath-build.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port="${1:-${PORT:-8086}}"
threads="${2:-${THREADS:-$(nproc)}}"
"$here/../lib/go-gopath-build.sh" "$here" ssepeer-echo
ulimit -n "$(ulimit -Hn)"
exec "$here/ssepeer-echo" "$port" "$threads"
