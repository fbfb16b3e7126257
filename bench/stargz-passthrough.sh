#!/usr/bin/env bash
# Builds upstream's containerd-stargz-grpc (stargz-snapshotter >= v0.16: FUSE passthrough) for the
# B9 bench's --stargz-bin, offline: Debian bookworm's snapshotter (0.12) has no passthrough, and
# this machine reaches no Go module proxy, only Debian's apt repositories. So: a Debian sid chroot
# (debootstrap, under BUILD_ROOT, never on the system's root) with sid's Go and the Go libraries the
# snapshotter imports as Debian packages (/usr/share/gocode), and the source built there in GOPATH
# mode, statically (CGO_ENABLED=0: it runs on the host's older libc). Tested with v0.17.0, the
# release whose containerd (2.1) and go-fuse (2.8) match sid's packages (2.1.9, 2.9.0): no patch needed.
#
#   bash bench/stargz-passthrough.sh SRC_DIR OUT_DIR
#
# SRC_DIR: a checkout of https://github.com/containerd/stargz-snapshotter (git clone, then
# `git checkout v0.17.0`); OUT_DIR gets containerd-stargz-grpc (replaced atomically). Its version
# (`-version`) is `git describe` of SRC_DIR. Root (debootstrap, chroot). BUILD_ROOT (default
# /var/tmp/prebuilt-sid-build) keeps the chroot and Go's build cache between runs: a second run
# only links (under a minute); the first bootstraps sid and installs ~400 MB of packages (~5 min)
# and compiles (~8 min on 2 loaded cores). Then:
#
#   node bench/oci-layering.mjs --lazy-only --stargz-bin OUT_DIR/containerd-stargz-grpc …
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=../scripts/debian-rootfs.sh
. scripts/debian-rootfs.sh

usage='usage: bash bench/stargz-passthrough.sh SRC_DIR OUT_DIR (SRC_DIR: a stargz-snapshotter checkout, v0.16 or newer)'
[ "$#" = 2 ] || { echo "$usage" >&2; exit 2; }
SRC="$(cd "$1" 2>/dev/null && pwd)" || { echo "[stargz-passthrough] $1: no such directory. $usage" >&2; exit 2; }
OUT="$2"
[ -f "$SRC/cmd/containerd-stargz-grpc/main.go" ] || { echo "[stargz-passthrough] $SRC has no cmd/containerd-stargz-grpc/main.go: not a stargz-snapshotter checkout. $usage" >&2; exit 2; }
grep -q 'toml:"passthrough"' "$SRC/fs/config/config.go" || { echo "[stargz-passthrough] $SRC is a stargz-snapshotter without FUSE passthrough (it came in v0.16): git -C $SRC checkout v0.17.0" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "[stargz-passthrough] needs root (debootstrap, chroot)." >&2; exit 2; }
command -v debootstrap >/dev/null || { echo "[stargz-passthrough] debootstrap is missing: apt-get install debootstrap" >&2; exit 2; }

BUILD_ROOT="${BUILD_ROOT:-/var/tmp/prebuilt-sid-build}"
CHROOT="$BUILD_ROOT/root"
# What cmd/containerd-stargz-grpc imports (with their dependencies, which apt pulls in). k8s' CRI
# API from golang-github-kubernetes-cri-api-dev: containerd's NRI needs it, and sid's newer
# golang-k8s-cri-api-dev breaks it.
PACKAGES=(
  golang-go golang-github-containerd-containerd-dev golang-github-hanwen-go-fuse-dev
  golang-k8s-client-go-dev golang-k8s-apimachinery-dev golang-github-kubernetes-cri-api-dev
  golang-github-docker-docker-dev golang-github-containerd-plugin-dev golang-github-containerd-platforms-dev
  golang-github-containerd-errdefs-dev golang-github-containerd-log-dev golang-github-distribution-reference-dev
  golang-github-prometheus-client-golang-dev golang-github-coreos-bbolt-dev golang-github-containerd-console-dev
  golang-github-containerd-continuity-dev golang-github-containerd-go-cni-dev golang-github-coreos-go-systemd-dev
  golang-github-docker-go-metrics-dev golang-github-golang-groupcache-dev golang-github-hashicorp-go-retryablehttp-dev
  golang-github-klauspost-compress-dev golang-github-mitchellh-go-homedir-dev golang-github-moby-sys-dev
  golang-github-opencontainers-go-digest-dev golang-github-opencontainers-image-spec-dev
  golang-github-opencontainers-specs-dev golang-github-pelletier-go-toml-dev golang-github-rs-xid-dev
  golang-github-vbatts-tar-split-dev golang-golang-x-sync-dev golang-golang-x-sys-dev golang-google-grpc-dev
  golang-google-protobuf-dev golang-logrus-dev golang-github-gogo-protobuf-dev
)

mkdir -p "$BUILD_ROOT"
if [ ! -x "$CHROOT/usr/bin/apt-get" ]; then
  echo "[stargz-passthrough] bootstrapping Debian sid in $CHROOT" >&2
  rm -rf --one-file-system "$CHROOT"
  nice -n 19 debootstrap --variant=minbase sid "$CHROOT" "$(apt_mirror sid)" >"$BUILD_ROOT/debootstrap.log" 2>&1 ||
    { tail -n 20 "$BUILD_ROOT/debootstrap.log" >&2; exit 1; }
fi
# A mirror's snapshot of sid has an expired Release file (its Valid-Until passed): take it as it is.
echo 'Acquire::Check-Valid-Until "false";' >"$CHROOT/etc/apt/apt.conf.d/99prebuilt-no-valid-until"
cp /etc/resolv.conf "$CHROOT/etc/resolv.conf"
mountpoint -q "$CHROOT/proc" || mount -t proc proc "$CHROOT/proc"
trap 'umount -l "$CHROOT/proc" 2>/dev/null || true' EXIT
echo "[stargz-passthrough] installing sid's Go and Go libraries in the chroot" >&2
{ chroot "$CHROOT" apt-get update && DEBIAN_FRONTEND=noninteractive nice -n 19 chroot "$CHROOT" apt-get install -y --no-install-recommends "${PACKAGES[@]}"; } >"$BUILD_ROOT/apt.log" 2>&1 ||
  { tail -n 30 "$BUILD_ROOT/apt.log" >&2; exit 1; }

# The source in its GOPATH place, before Debian's (older) stargz-snapshotter library that some of the packages pull in.
GOSRC="$CHROOT/build/gopath/src/github.com/containerd/stargz-snapshotter"
rm -rf --one-file-system "$GOSRC"
mkdir -p "$GOSRC" "$CHROOT/build/out"
tar -C "$SRC" --exclude=.git -cf - . | tar -C "$GOSRC" -xf -
version="$(git -C "$SRC" describe --tags --match 'v*' 2>/dev/null || echo unknown)"
revision="$(git -C "$SRC" rev-parse HEAD 2>/dev/null || echo unknown)"
pkg=github.com/containerd/stargz-snapshotter
echo "[stargz-passthrough] building containerd-stargz-grpc $version" >&2
nice -n 19 chroot "$CHROOT" env GOPATH=/build/gopath:/usr/share/gocode GO111MODULE=off GOFLAGS= GOTOOLCHAIN=local \
  CGO_ENABLED=0 GOCACHE=/build/cache go build \
  -ldflags "-X $pkg/version.Version=$version -X $pkg/version.Revision=$revision" \
  -o /build/out/containerd-stargz-grpc "$pkg/cmd/containerd-stargz-grpc"

mkdir -p "$OUT"
install -m 0755 "$CHROOT/build/out/containerd-stargz-grpc" "$OUT/containerd-stargz-grpc.new"
mv -f "$OUT/containerd-stargz-grpc.new" "$OUT/containerd-stargz-grpc"
"$OUT/containerd-stargz-grpc" -version
