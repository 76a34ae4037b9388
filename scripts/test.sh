#!/usr/bin/env bash
# The test command: installs what the tests need on a fresh machine, then runs every test of the
# workspace (unit, integration, real browser and client libraries).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-test-deps.sh
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
