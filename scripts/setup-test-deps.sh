#!/usr/bin/env bash
# Installs what the browser and client-library tests need. (Filled in by issue 4.)
set -euo pipefail
