#!/usr/bin/env bash
# The README's main command: sets everything up (scripts/setup.sh), then builds the images of
# examples/hello_flow.py on the embedded default (local Docker daemon, local registry, the example
# conda channel and PyPI index) and runs each step's interpreter in its image.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec node scripts/demo.mjs "$@"
