#!/usr/bin/env bash
# The README's test command: sets everything up (scripts/setup.sh), type-checks the whole repo —
# libraries, tests, fixtures and test/*.ts (pnpm typecheck) —, then runs every test and ends with one
# plain summary line ("N passed, N failed, N skipped"). A type error fails the run, as a failed test
# does, but the tests still run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# setting_from VAR SCRIPT WHAT: exports VAR as SCRIPT prints it, unless VAR is set already; when
# SCRIPT fails, VAR stays unset and the tests that need WHAT skip (and fail in CI).
setting_from() {
  local var=$1 script=$2 what=$3 value
  [ -z "${!var:-}" ] || return 0
  if value=$(bash "$script"); then
    export "$var=$value"
  else
    unset "$var"
    echo "[test] no $what: the tests that need it will skip (fail in CI)" >&2
  fi
}
# Real Metaflow for the tests that run it: the vendored source, unpacked once (scripts/metaflow-source.sh).
setting_from PREBUILT_TEST_METAFLOW_SOURCE scripts/metaflow-source.sh "Metaflow source"
# Newer pips (Debian trixie's and forky's) for the wheels-only pip launcher's tests (scripts/test-pips.sh).
setting_from PREBUILT_TEST_PIP_PYTHONS scripts/test-pips.sh "newer pips"
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
