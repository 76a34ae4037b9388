#!/usr/bin/env bash
# Starts the nginx + nchan peer in the foreground: scripts/peers/nchan/run.sh PORT THREADS
# Its prefix directory (config, pid file, error log, temp files) is a fresh temp dir, printed on
# stderr; NCHAN_PREFIX chooses it instead. exec replaces this shell, so $! of a caller that
# backgrounds this script is the nginx master's pid.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port="${1:-${PORT:-8084}}"
threads="${2:-${THREADS:-$(nproc)}}"
module=/usr/lib/nginx/modules/ngx_nchan_module.so
if ! command -v nginx >/dev/null || [[ ! -f "$module" ]]; then
  echo "nchan peer: nginx or the nchan module is missing; run scripts/install-peers.sh" >&2
  exit 1
fi
ulimit -n "$(ulimit -Hn)"
nofile="$(ulimit -n)"
prefix="${NCHAN_PREFIX:-$(mktemp -d /tmp/sse-peer-nchan.XXXXXX)}"
mkdir -p "$prefix"
sed -e "s|@PORT@|$port|g" -e "s|@THREADS@|$threads|g" -e "s|@PREFIX@|$prefix|g" \
    -e "s|@NOFILE@|$nofile|g" -e "s|@MODULE@|$module|g" \
    "$here/nginx.conf.template" > "$prefix/nginx.conf"
echo "nchan peer: http://127.0.0.1:$port, $threads workers, prefix $prefix" >&2
exec nginx -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log"
