#!/usr/bin/env bash
# Builds the Go peer in DIR into DIR/NAME when a .go file there is newer than the binary:
# scripts/peers/lib/go-gopath-build.sh DIR NAME
#
# No Go module proxy is reachable here, so the Gin and echo peers are built the way Debian
# builds Go packages: GOPATH mode (GO111MODULE=off) against the sources its golang-*-dev
# packages install under /usr/share/gocode. Our source is copied into a private GOPATH
# (DIR/.gopath/src/NAME, listed first, so nothing is ever written under /usr/share/gocode):
# only code inside a GOPATH, with a go.mod beside it, may import a `/v4`-suffixed path such as
# echo's, which GOPATH mode then finds in the unsuffixed directory Debian installs ("minimal
# module compatibility"; the go.mod is otherwise ignored).
set -euo pipefail
dir="$1" name="$2"
if ! command -v go >/dev/null; then
  echo "$name: go is missing; run scripts/install-peers.sh" >&2
  exit 1
fi
stale=0
[[ -x "$dir/$name" ]] || stale=1
for src in "$dir"/*.go "$dir/go.mod"; do
  [[ "$src" -nt "$dir/$name" ]] && stale=1
done
((stale)) || exit 0
src="$dir/.gopath/src/$name"
rm -rf "$src"
mkdir -p "$src"
cp "$dir"/*.go "$dir/go.mod" "$src/"
(cd "$src" && GO111MODULE=off GOPROXY=off GOFLAGS='' GOPATH="$dir/.gopath:/usr/share/gocode" \
  go build -o "$dir/$name" .)
