#!/usr/bin/env bash
# Builds (cargo decides whether anything changed) and starts the axum peer in the foreground:
# scripts/peers/axum/run.sh PORT THREADS. exec replaces this shell, so a caller's $! is the server.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port="${1:-${PORT:-8082}}"
threads="${2:-${THREADS:-$(nproc)}}"
# Its own target directory, whatever the caller's CARGO_TARGET_DIR says: the peer is not part
# of the workspace and must not share its build lock.
export CARGO_TARGET_DIR="$here/target"
cargo build --quiet --release --manifest-path "$here/Cargo.toml"
ulimit -n "$(ulimit -Hn)"
exec "$here/target/release/sse-peer-axum" "$port" "$threads"
