#!/usr/bin/env bash
# Makes DIR/.venv hold exactly DIR/requirements.txt (pip, from PyPI); does nothing when it
# already does: scripts/peers/lib/python-venv.sh DIR
#
# A venv per Python peer, so the system Python stays untouched and each peer has only its own
# packages. The stamp file holds the requirements' hash, as scripts/setup-test-deps.sh does for
# the test clients' venv, so a changed requirements.txt rebuilds the venv from scratch.
set -euo pipefail
dir="$1"
venv="$dir/.venv"
hash="$(sha256sum "$dir/requirements.txt" | cut -d' ' -f1)"
stamp="$venv/.requirements-stamp"
[[ "$(cat "$stamp" 2>/dev/null || true)" == "$hash" ]] && exit 0
python="$(command -v python3 || true)"
if [[ -z "$python" ]]; then
  echo "$(basename "$dir") peer: python3 is missing; run scripts/install-peers.sh" >&2
  exit 1
fi
echo "$(basename "$dir") peer: creating $venv from requirements.txt" >&2
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r "$dir/requirements.txt"
echo "$hash" >"$stamp"
