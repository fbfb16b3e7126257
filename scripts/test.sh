#!/usr/bin/env bash
# The README's test command: sets everything up (scripts/setup.sh), then runs every test and ends
# with one plain summary line ("N passed, N failed, N skipped").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# Real Metaflow for the tests that run it: the vendored source, unpacked once (scripts/metaflow-source.sh).
if [ -z "${PREBUILT_TEST_METAFLOW_SOURCE:-}" ]; then
  if PREBUILT_TEST_METAFLOW_SOURCE=$(bash scripts/metaflow-source.sh); then
    export PREBUILT_TEST_METAFLOW_SOURCE
  else
    unset PREBUILT_TEST_METAFLOW_SOURCE
    echo "[test] no Metaflow source: the tests that run real Metaflow will skip" >&2
  fi
fi
mkdir -p .test-results
rm -f .test-results/vitest.json
status=0
pnpm test --reporter=default --reporter=json --outputFile.json=.test-results/vitest.json || status=$?
node -e '
  const fs = require("node:fs");
  const file = ".test-results/vitest.json";
  if (!fs.existsSync(file)) { console.log("tests: no report was written"); process.exit(0); }
  const r = JSON.parse(fs.readFileSync(file, "utf8"));
  const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  console.log(`\n${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
'
exit "$status"
