#!/usr/bin/env bash
# Unpacks the vendored Metaflow source (../shared/vendor/metaflow-<version>.tar.gz beside the repo,
# Apache-2.0) once into a cache keyed by the tarball's sha256 and prints the directory that holds
# `metaflow/` — the value of PREBUILT_TEST_METAFLOW_SOURCE for the tests that run real Metaflow.
#
#   PREBUILT_METAFLOW_TARBALL   the tarball (default ../shared/vendor/metaflow-2.19.38.tar.gz)
#   PREBUILT_METAFLOW_CACHE     where it is unpacked (default /var/tmp/prebuilt-metaflow; refused
#                               unless only you and root can write it: the tests import from it)
#
# Exit 2 with the reason when the tarball is absent or not a Metaflow source archive, or the cache
# directory is one another user could change.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# private_dir: sourcing only defines the functions.
# shellcheck source=test-services.sh
source scripts/test-services.sh

tarball=${PREBUILT_METAFLOW_TARBALL:-../shared/vendor/metaflow-2.19.38.tar.gz}
cache=${PREBUILT_METAFLOW_CACHE:-/var/tmp/prebuilt-metaflow}
if [ ! -f "$tarball" ]; then
  echo "metaflow-source: $tarball not found (the vendored Metaflow source, beside the repo in shared/vendor/); set PREBUILT_METAFLOW_TARBALL or PREBUILT_TEST_METAFLOW_SOURCE" >&2
  exit 2
fi
private_dir "$cache" || {
  echo "metaflow-source: $cache cannot hold the Metaflow source the tests import: set PREBUILT_METAFLOW_CACHE to a directory only you and root can write" >&2
  exit 2
}
sha=$(sha256sum "$tarball" | cut -d' ' -f1)
dest="$cache/$sha"
if [ ! -f "$dest/metaflow/__init__.py" ]; then
  tmp=$(mktemp -d "$cache/.unpack.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  tar -xzf "$tarball" -C "$tmp" --strip-components=1 --no-same-owner
  if [ ! -f "$tmp/metaflow/__init__.py" ]; then
    echo "metaflow-source: $tarball holds no <dir>/metaflow/__init__.py: not a Metaflow source archive" >&2
    exit 2
  fi
  # Another run may have finished first: keep its copy.
  mv -T "$tmp" "$dest" 2>/dev/null || true
  echo "[metaflow-source] unpacked $tarball into $dest" >&2
fi
printf '%s\n' "$dest"
