#!/usr/bin/env bash
# Installs what the real-client tests (server/tests/clients.rs), the backplane tests
# (server/tests/server/backplane.rs) and the proxy test need on a fresh machine:
#   - Debian's `redis-server` (each backplane test starts its own on a free loopback port);
#   - Debian's `chromium` (headless browser for EventSource and fetch-event-source), `curl`,
#     `nginx` (the TLS + HTTP/2 proxy test) and `openssl` (test keys and certificates);
#   - the npm packages of server/tests/clients (playwright-core, eventsource,
#     @microsoft/fetch-event-source, jose), from its package-lock.json;
#   - the Python packages of server/tests/clients/requirements.txt (httpx, httpx-sse, PyJWT,
#     PyYAML, openapi-spec-validator, schemathesis) into
#     server/tests/clients/.venv.
# Each step is skipped when already done, so running it before every test run costs little.
# Something that cannot be installed is reported plainly; the tests that need it then fail and say
# why, while the rest of the suite still runs.
set -euo pipefail
cd "$(dirname "$0")/.."
clients=server/tests/clients
problems=0

say() { printf 'setup-test-deps: %s\n' "$*" >&2; }

apt_updated=0
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    say "apt-get not found: install $* by hand"
    return 1
  fi
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo=(sudo); else
      say "not root and no sudo: install $* by hand"
      return 1
    fi
  fi
  if [ "$apt_updated" -eq 0 ]; then
    "${sudo[@]}" apt-get update -qq && apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@"
}

# Chromium: the browser tests launch /usr/bin/chromium (Playwright cannot download its own).
if [ ! -x /usr/bin/chromium ]; then
  say "installing chromium (Debian package)"
  if ! apt_install chromium fonts-dejavu-core || [ ! -x /usr/bin/chromium ]; then
    say "ERROR: could not install Chromium; the browser tests will fail"
    problems=1
  fi
fi

# Redis: the backplane tests and scripts/cluster.sh start their own `redis-server`.
if ! command -v redis-server >/dev/null 2>&1; then
  say "installing redis-server (Debian package)"
  if ! apt_install redis-server || ! command -v redis-server >/dev/null 2>&1; then
    say "ERROR: could not install redis-server; the backplane tests will fail"
    problems=1
  fi
fi

if ! command -v curl >/dev/null 2>&1; then
  say "installing curl"
  apt_install curl ca-certificates || { say "ERROR: could not install curl"; problems=1; }
fi

# jq, which the result scripts' tables are written in, for the test that runs them on a fake
# compare run (loadgen/tests/scripts).
if ! command -v jq >/dev/null 2>&1; then
  say "installing jq"
  apt_install jq || { say "ERROR: could not install jq; the result-table test will fail"; problems=1; }
fi

# nginx (Debian's package, with the http_v2 and ssl modules) for the proxy test
# (server/tests/proxy.rs). Only the binary is used: the test runs its own instance with its own
# configuration and ports; the package's default site is not started here.
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  say "installing nginx (Debian package)"
  apt_install nginx || { say "ERROR: could not install nginx; the proxy test will fail"; problems=1; }
fi

# systemd-analyze checks the unit file (server/tests/deploy.rs); only the tool is used, no
# service is started.
if ! command -v systemd-analyze >/dev/null 2>&1; then
  say "installing systemd (for systemd-analyze)"
  apt_install systemd || { say "ERROR: could not install systemd; the unit check will fail"; problems=1; }
fi

# openssl makes the key pairs of the JWT tests (and the proxy test's certificate).
if ! command -v openssl >/dev/null 2>&1; then
  say "installing openssl"
  apt_install openssl || { say "ERROR: could not install openssl"; problems=1; }
fi

# Node packages, exactly as locked. The stamp holds the lock file's hash, so `npm ci` runs only
# when the lock file changed or node_modules is missing.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  say "ERROR: node and npm (Node 20 or later) are needed; install them, then run this again"
  problems=1
else
  lock_hash=$(sha256sum "$clients/package-lock.json" | cut -d' ' -f1)
  stamp="$clients/node_modules/.setup-test-deps-stamp"
  if [ "$(cat "$stamp" 2>/dev/null || true)" != "$lock_hash" ]; then
    say "npm ci in $clients"
    if (cd "$clients" && npm ci --no-audit --no-fund --loglevel=error); then
      echo "$lock_hash" >"$stamp"
    else
      say "ERROR: npm ci failed in $clients"
      problems=1
    fi
  fi
fi

# Python packages in a venv of their own, so the system Python stays untouched.
venv="$clients/.venv"
req_hash=$(sha256sum "$clients/requirements.txt" | cut -d' ' -f1)
pystamp="$venv/.setup-test-deps-stamp"
if [ "$(cat "$pystamp" 2>/dev/null || true)" != "$req_hash" ]; then
  say "creating $venv (httpx, httpx-sse, PyJWT, openapi-spec-validator, schemathesis)"
  python=$(command -v python3 || true)
  if [ -z "$python" ]; then
    say "ERROR: python3 is needed for the httpx-sse test"
    problems=1
  elif { "$python" -m venv "$venv" || { apt_install python3-venv && "$python" -m venv "$venv"; }; } \
    && "$venv/bin/pip" install -q --disable-pip-version-check -r "$clients/requirements.txt"; then
    echo "$req_hash" >"$pystamp"
  else
    say "ERROR: could not set up $venv"
    problems=1
  fi
fi

if [ "$problems" -ne 0 ]; then
  say "some test dependencies are missing (see above); the tests that need them will fail"
fi
exit 0
