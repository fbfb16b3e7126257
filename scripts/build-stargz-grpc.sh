#!/usr/bin/env bash
# Builds containerd-stargz-grpc (the stargz snapshotter, a containerd proxy snapshotter plugin) into
# /usr/local/bin for the oci eStargz lazy-pull test and bench. Debian bookworm's stargz-snapshotter
# 0.12 package ships only ctr-remote; its library is in golang-github-containerd-stargz-snapshotter-dev,
# and scripts/stargz-grpc/main.go serves it (no CRI keychain: Debian lacks k8s' cri-api). Offline:
# Debian's Go and Go libraries only, GOPATH mode. Idempotent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=/usr/local/bin/containerd-stargz-grpc
SRC=scripts/stargz-grpc/main.go
if [ -x "$BIN" ] && [ "$BIN" -nt "$SRC" ]; then exit 0; fi
PACKAGES=(stargz-snapshotter golang-go golang-github-containerd-stargz-snapshotter-dev)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "[stargz] apt-get install ${missing[*]}" >&2
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi
echo "[stargz] building $BIN" >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
GOPATH=/usr/share/gocode GO111MODULE=off GOCACHE="$tmp/cache" GOFLAGS= go build -o "$tmp/containerd-stargz-grpc" "$SRC"
install -m 0755 "$tmp/containerd-stargz-grpc" "$BIN"
