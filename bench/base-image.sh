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

mirror() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri="$(awk -v suite="$SUITE" 'tolower($1)=="uris:" {u=$2} tolower($1)=="suites:" && index($0, suite) {print u; exit}' "$f")"
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  uri="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk -v suite="$SUITE" '$1=="deb" { i=2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i+1)==suite) { print $i; exit } }')"
  echo "${uri:-http://deb.debian.org/debian}"
}

arch="$(dpkg --print-architecture)"
src="$(mirror)"
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
  build="$STATE_DIR/rootfs.$$"
  rm -rf --one-file-system "$build"
  mkdir -p "$build"
  log "debootstrap minbase $SUITE + $INCLUDE from $src (a few minutes; log in $STATE_DIR/debootstrap.log)"
  rc=0
  debootstrap --variant=minbase --include="$INCLUDE" --arch="$arch" "$SUITE" "$build" "$src" >"$STATE_DIR/debootstrap.log" 2>&1 || rc=$?
  awk -v d="$build/" 'index($2, d)==1 {print $2}' /proc/mounts | sort -r | xargs -r umount -l 2>/dev/null || true
  if [ "$rc" != 0 ]; then
    tail -n 20 "$STATE_DIR/debootstrap.log" >&2 || true
    rm -rf --one-file-system "$build"
    log "debootstrap failed (exit $rc)"
    exit 1
  fi
  rm -rf "$build/var/lib/apt/lists/"* "$build/var/cache/apt/"*.bin "$build/var/cache/apt/archives/"*.deb
  tar --numeric-owner -C "$build" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  rm -rf --one-file-system "$build"
fi
log "docker import + push $REF"
docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$REF" <"$tarball" >/dev/null
docker push "$REF" >/dev/null
echo "$REF" >"$record"
echo "$REF"
