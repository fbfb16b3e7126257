#!/usr/bin/env bash
# The README's test command: sets everything up (scripts/setup.sh), type-checks the whole repo —
# libraries, tests, fixtures and test/*.ts (pnpm typecheck) —, then runs every test and ends with one
# plain summary line ("N passed, N failed, N skipped"). A type error fails the run, as a failed test
# does, but the tests still run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# Real Metaflow for the tests that run it: the vendored source, unpacked once (scripts/metaflow-source.sh).
if [ -z "${PREBUILT_TEST_METAFLOW_SOURCE:-}" ]; then
  if PREBUILT_TEST_METAFLOW_SOURCE=$(bash scripts/metaflow-source.sh); then
    export PREBUILT_TEST_METAFLOW_SOURCE
  else
    unset PREBUILT_TEST_METAFLOW_SOURCE
    echo "[test] no Metaflow source: the tests that run real Metaflow will skip (fail in CI)" >&2
  fi
fi
# Newer pips (Debian trixie's and forky's) for the wheels-only pip launcher's tests (scripts/test-pips.sh).
if [ -z "${PREBUILT_TEST_PIP_PYTHONS:-}" ]; then
  if PREBUILT_TEST_PIP_PYTHONS=$(bash scripts/test-pips.sh); then
    export PREBUILT_TEST_PIP_PYTHONS
  else
    unset PREBUILT_TEST_PIP_PYTHONS
    echo "[test] no newer pips: the pip launcher's tests on them will skip (fail in CI)" >&2
  fi
fi
mkdir -p .test-results
rm -f .test-results/vitest.json
status=0
typecheck=0
pnpm typecheck || typecheck=$?
pnpm test --reporter=default --reporter=json --outputFile.json=.test-results/vitest.json || status=$?
if [ "$typecheck" -ne 0 ]; then
  echo "typecheck failed (pnpm typecheck, exit $typecheck): its errors are printed before the tests' output" >&2
  [ "$status" -ne 0 ] || status=$typecheck
fi
node -e '
  const fs = require("node:fs");
  const file = ".test-results/vitest.json";
  if (!fs.existsSync(file)) { console.log("tests: no report was written"); process.exit(0); }
  const r = JSON.parse(fs.readFileSync(file, "utf8"));
  const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  console.log(`\n${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
'
exit "$status"
