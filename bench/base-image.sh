#!/usr/bin/env bash
# The bench's base image: Debian bookworm minbase with python3 (full stdlib), python3-pip and zstd,
# made with debootstrap like the test base image (scripts/test-services.sh), then imported into the
# local Docker daemon and pushed to the local no-auth registry. B2 (cold start) needs it: the
# bootstrap baseline downloads, unpacks (.conda = zip + zstd) and pip-installs inside the container,
# which the test base image (python3-minimal: no shutil, zipfile, tarfile or pip) cannot do.
#
#   bash bench/base-image.sh <registry host:port>     prints the image reference on stdout
#
# The rootfs tarball is cached in $PREBUILT_BENCH_DIR (default /var/tmp/prebuilt-bench), keyed by
# its inputs; an image already in the registry with the same key is reused.
set -euo pipefail

REGISTRY="${1:?usage: bash bench/base-image.sh <registry host:port>}"
STATE_DIR="${PREBUILT_BENCH_DIR:-/var/tmp/prebuilt-bench}"
SUITE=bookworm
INCLUDE=python3,python3-pip,zstd,ca-certificates
RECIPE=1
REF="$REGISTRY/prebuilt-bench/base:$SUITE-pip"

log() { printf '[bench base image] %s\n' "$*" >&2; }
# shellcheck source=../scripts/debian-rootfs.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/debian-rootfs.sh"

arch="$(dpkg --print-architecture)"
src="$(apt_mirror "$SUITE")"
key="$(printf '%s\n' "$RECIPE" "$SUITE" "$INCLUDE" "$src" "$arch" | sha256sum | cut -c1-16)"
mkdir -p "$STATE_DIR"
record="$STATE_DIR/base-image.$key"

if [ -f "$record" ] && [ "$(cat "$record")" = "$REF" ] &&
  curl -sf -o /dev/null -I -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REGISTRY/v2/prebuilt-bench/base/manifests/$SUITE-pip"; then
  # B2's empty-node runs remove the local copy: pull it back (a new import would get a new digest,
  # hence new env ids and images to rebuild).
  docker image inspect "$REF" >/dev/null 2>&1 || docker pull -q "$REF" >/dev/null
  echo "$REF"
  exit 0
fi

tarball="$STATE_DIR/rootfs-$SUITE-$key.tar"
if [ ! -f "$tarball" ]; then
  log "debootstrap minbase $SUITE + $INCLUDE from $src (a few minutes; log in $STATE_DIR/debootstrap.log)"
  rc=0
  debian_rootfs_tar "$tarball" "$STATE_DIR/rootfs.$$" "$STATE_DIR/debootstrap.log" "$SUITE" minbase "$INCLUDE" "$src" "$arch" || rc=$?
  if [ "$rc" != 0 ]; then
    log "debootstrap or tar failed (exit $rc)"
    exit 1
  fi
fi
log "docker import + push $REF"
docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$REF" <"$tarball" >/dev/null
docker push "$REF" >/dev/null
echo "$REF" >"$record"
echo "$REF"
