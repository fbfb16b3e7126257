#!/usr/bin/env bash
# Builds containerd-stargz-grpc (the stargz snapshotter, a containerd proxy snapshotter plugin) into
# /usr/local/bin for the oci eStargz lazy-pull test and bench. Debian bookworm's stargz-snapshotter
# 0.12 package ships only ctr-remote; its library is in golang-github-containerd-stargz-snapshotter-dev,
# and scripts/stargz-grpc/main.go serves it (no CRI keychain: Debian lacks k8s' cri-api). Offline:
# Debian's Go and Go libraries only (scripts/setup.sh installs them), GOPATH mode. Idempotent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=/usr/local/bin/containerd-stargz-grpc
SRC=scripts/stargz-grpc/main.go
# Up to date: built from this main.go (its sha256, recorded beside the binary: a fresh clone or
# worktree gives main.go a new mtime, so times cannot tell), or newer than the source (a build from
# before the record), and not a build from before main.go read the cri.* labels (another
# checkout's older main.go, touched later, can have put one there).
STAMP="$BIN.source-sha256"
want="$(sha256sum "$SRC" | cut -d' ' -f1)"
if [ -x "$BIN" ] && grep -q 'containerd.io/snapshot/cri.image-ref' "$BIN" &&
  { [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ] || [ "$BIN" -nt "$SRC" ]; }; then
  echo "[stargz] reusing $BIN" >&2
  exit 0
fi
for need in go ctr-remote; do
  command -v "$need" >/dev/null || { echo "[stargz] $need is missing: apt-get install stargz-snapshotter golang-go golang-github-containerd-stargz-snapshotter-dev (scripts/setup.sh does)" >&2; exit 2; }
done
[ -d /usr/share/gocode/src/github.com/containerd/stargz-snapshotter/fs ] || { echo "[stargz] the snapshotter's Go library is missing: apt-get install golang-github-containerd-stargz-snapshotter-dev" >&2; exit 2; }
echo "[stargz] building $BIN" >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
GOPATH=/usr/share/gocode GO111MODULE=off GOCACHE="$tmp/cache" GOFLAGS= go build -o "$tmp/containerd-stargz-grpc" "$SRC"
# Atomically: a snapshotter started meanwhile (another test) finds the old binary or the new one, never none.
install -m 0755 "$tmp/containerd-stargz-grpc" "$BIN.new"
mv -f "$BIN.new" "$BIN"
printf '%s\n' "$want" > "$STAMP.new"
mv -f "$STAMP.new" "$STAMP"
