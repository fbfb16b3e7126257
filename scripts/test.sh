#!/usr/bin/env bash
# The README's test command: sets everything up (scripts/setup.sh), then runs every test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec pnpm test
