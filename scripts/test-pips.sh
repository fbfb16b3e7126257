#!/usr/bin/env bash
# Newer pips for the wheels-only pip launcher's tests (packages/conda/src/resolve/pip-resolver.test.ts):
# the launcher wraps pip internals, and bookworm's python3-pip is pip 23.0.1 only. Debian trixie's
# and forky's python3-pip-whl (pip 25.x and the newest 26.x) are fetched by apt into a private cache
# and unpacked (test-services.sh's fetch_suite_root: nothing is installed into the system); each
# wheel is unpacked into a venv of the host python3 made without pip. Prints the venvs' interpreters,
# colon-separated: the value of PREBUILT_TEST_PIP_PYTHONS (scripts/test.sh sets it).
#
#   PREBUILT_TEST_PIP_SUITES   the Debian suites (default "trixie forky")
#   PREBUILT_TEST_PIPS_DIR     where (default /var/tmp/prebuilt-test-pips; refused unless only you and
#                              root can write it: the tests run pip from it)
#
# Exit 2 with the reason when a suite's pip cannot be fetched or does not run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# private_dir, ensure_suite_root: sourcing only defines the functions.
# shellcheck source=test-services.sh
source scripts/test-services.sh

dir=${PREBUILT_TEST_PIPS_DIR:-/var/tmp/prebuilt-test-pips}
private_dir "$dir" || {
  echo "test-pips: $dir cannot hold the pips the tests run: set PREBUILT_TEST_PIPS_DIR to a directory only you and root can write" >&2
  exit 2
}
pythons=()
for suite in ${PREBUILT_TEST_PIP_SUITES:-trixie forky}; do
  if ! ensure_suite_root "$dir/$suite" usr/share/python-wheels "pip of Debian $suite" "the pip launcher's tests on it skip (fail in CI)" : python3-pip-whl; then
    echo "test-pips: ${MISSING[*]}" >&2
    exit 2
  fi
  wheels=("$dir/$suite/root/usr/share/python-wheels"/pip-*.whl)
  wheel=${wheels[0]}
  if [ ! -f "$wheel" ]; then
    echo "test-pips: Debian $suite's python3-pip-whl holds no pip wheel in /usr/share/python-wheels" >&2
    exit 2
  fi
  venv="$dir/$suite/venv"
  recipe="$(sha256sum <"$wheel") $(command -v python3) $(python3 --version 2>&1)"
  if [ "$(cat "$venv/.prebuilt-recipe" 2>/dev/null)" != "$recipe" ]; then
    rm -rf "$venv"
    python3 -m venv --without-pip "$venv"
    "$venv/bin/python" - "$wheel" <<'PY'
import sys, sysconfig, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sysconfig.get_paths()["purelib"])
PY
    printf '%s\n' "$recipe" >"$venv/.prebuilt-recipe"
  fi
  if ! version=$("$venv/bin/python" -m pip --version 2>&1); then
    echo "test-pips: the pip of Debian $suite does not run in $venv: $version" >&2
    exit 2
  fi
  echo "[test-pips] $version" >&2
  pythons+=("$venv/bin/python")
done
(IFS=:; printf '%s\n' "${pythons[*]}")
