#!/usr/bin/env bash
# Installs and builds the comparison peers of scripts/compare.sh, and says plainly what failed.
# Running it again only checks (and rebuilds what changed).
#
#   ./scripts/install-peers.sh [--peers LIST]   (default: every peer,
#                                                 go,axum,node,nchan,gin,echo,flask,pushpin,starlette)
#
# apt-get: golang-go (Go, Gin, echo peers, Pushpin's origin), golang-github-gin-gonic-gin-dev and
# golang-github-labstack-echo-dev (Go sources, built offline in GOPATH mode), pushpin (with
# condure and zurl), nginx-light + libnginx-mod-nchan (nchan peer), nodejs when no node is on
# PATH (Node peer), python3-venv when python3 cannot make a venv. pip, from PyPI, into a venv
# per peer (scripts/peers/{flask,starlette}/.venv, gitignored): each peer's requirements.txt.
# cargo: the axum peer (its own project, scripts/peers/axum/).
# Exit status: 0 when every requested peer is ready, 1 otherwise (the others are still built).
# --servers LIST is the same as --peers LIST.
set -uo pipefail
source "$(dirname "$0")/lib/common.sh"
source "$ROOT/scripts/lib/peers.sh"

servers="$(printf '%s\n' "${ALL_SERVERS[@]}" | grep -vx ours | paste -sd,)"
while (($#)); do
  case "$1" in
    --peers | --servers) servers="$2"; shift 2 ;;
    --peers=* | --servers=*) servers="${1#*=}"; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
IFS=, read -ra wanted <<<"$servers"

failed=()
for name in "${wanted[@]}"; do
  case "$name" in
    go) ensure_apt golang-go ;;
    gin) ensure_apt golang-go golang-github-gin-gonic-gin-dev ;;
    echo) ensure_apt golang-go golang-github-labstack-echo-dev ;;
    # pushpin brings condure, zurl and mongrel2-core. Where an init system runs, the package
    # starts a system-wide Pushpin; ensure_apt stops it, as it does nginx's.
    pushpin) ensure_apt golang-go pushpin ;;
    nchan) ensure_apt nginx-light libnginx-mod-nchan ;;
    node) command -v node >/dev/null || ensure_apt nodejs ;;
    flask | starlette)
      # A venv needs ensurepip, which Debian ships apart from python3 (python3-venv).
      if ! command -v python3 >/dev/null || ! python3 -c 'import ensurepip' 2>/dev/null; then
        ensure_apt python3 python3-venv
      fi
      ;;
    axum) command -v cargo >/dev/null || warn "cargo is missing: install Rust (https://rustup.rs) first" ;;
    ours) ;;
    *) warn "unknown peer '$name' (known: ${ALL_SERVERS[*]})" ;;
  esac
  if server_build "$name"; then
    log "$name: ready ($(server_version "$name"))"
  else
    warn "$name: NOT ready; compare.sh will report it and carry on with the others"
    failed+=("$name")
  fi
done

if ((${#failed[@]})); then
  warn "peers that could not be installed or built: ${failed[*]}"
  exit 1
fi
log "all requested peers are ready: ${wanted[*]}"
