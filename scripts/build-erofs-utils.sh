#!/usr/bin/env bash
# Builds erofs-utils >= 1.8 (mkfs.erofs, fsck.erofs, dump.erofs) into /usr/local/bin: containerd
# 2.1's erofs differ converts each tar layer with `mkfs.erofs --tar=f`, which bookworm's 1.5 lacks.
# The source is Debian trixie's erofs-utils (1.8.6): fetched by `apt-get source --download-only`
# through a private sources list (a deb-src line for trixie, its Release file checked against
# bookworm's debian-archive-keyring, the tarballs against its hashes), unpacked with dpkg-source
# (Debian's patches applied), built without fuse, lzma, libdeflate, qpl, xxhash and selinux (only
# what mkfs needs: lz4, zstd, zlib, uuid). Build dependencies come from bookworm's apt.
# Idempotent: nothing to do when /usr/local/bin/mkfs.erofs --version says >= 1.8.
#
#   PREBUILT_EROFS_SUITE     Debian suite whose source is built (default trixie)
#   PREBUILT_EROFS_BIN_DIR   where the tools go              (default /usr/local/bin)
#   PREBUILT_EROFS_WORK_DIR  apt lists, cache and build tree (default /var/tmp/prebuilt-erofs-utils;
#                            refused unless only root can write it)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# apt_mirror (the Debian mirror /etc/apt uses), suite_apt (apt-get with a private sources list),
# private_dir, mkfs_erofs_version and at_least: sourcing only defines the functions.
# shellcheck source=test-services.sh
source scripts/test-services.sh

BIN_DIR="${PREBUILT_EROFS_BIN_DIR:-/usr/local/bin}"
SUITE="${PREBUILT_EROFS_SUITE:-trixie}"
WORK="${PREBUILT_EROFS_WORK_DIR:-/var/tmp/prebuilt-erofs-utils}"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
BUILD_DEPS=(build-essential dpkg-dev autoconf automake libtool pkg-config liblz4-dev uuid-dev zlib1g-dev libzstd-dev debian-archive-keyring)

say() { printf '[erofs-utils] %s\n' "$*" >&2; }
fail() {
  say "FAILED: $1"
  say "$2"
  exit 1
}

recent_enough() { at_least "$1" 1.8; }

have_version="$(mkfs_erofs_version "$BIN_DIR/mkfs.erofs")"
if recent_enough "$have_version"; then say "reusing $BIN_DIR/mkfs.erofs $have_version"; exit 0; fi
[ "$(id -u)" = 0 ] || fail "building erofs-utils into $BIN_DIR needs root" "Run 'sudo bash scripts/build-erofs-utils.sh' (scripts/setup.sh runs it)."
private_dir "$WORK" || fail "$WORK cannot hold the build: another user could change its sources" "Set PREBUILT_EROFS_WORK_DIR to a directory only root can write, or remove $WORK."
say "$BIN_DIR/mkfs.erofs is ${have_version:-absent}, containerd 2.1's erofs differ needs >= 1.8: building Debian $SUITE's erofs-utils"

missing_deps=()
for pkg in "${BUILD_DEPS[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing_deps+=("$pkg")
done
if [ "${#missing_deps[@]}" -gt 0 ]; then
  say "apt-get install ${missing_deps[*]}"
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing_deps[@]}"; } >&2 ||
    fail "apt-get install ${missing_deps[*]} failed (output above)" "Let apt reach the Debian mirror, then run this script again."
fi

mkdir -p "$WORK/apt/lists/partial" "$WORK/apt/cache/archives/partial"
echo "deb-src [signed-by=$KEYRING] $(apt_mirror) $SUITE main" >"$WORK/apt/sources.list"
src="$WORK/src.tmp.$$"
trap 'rm -rf "$src"' EXIT
rm -rf "$src" && mkdir -p "$src"
say "apt-get source --download-only erofs-utils from $SUITE (log: $WORK/build.log)"
{ suite_apt "$WORK" update && (cd "$src" && suite_apt "$WORK" source --download-only erofs-utils); } >"$WORK/build.log" 2>&1 ||
  fail "apt could not fetch $SUITE's erofs-utils source (log: $WORK/build.log)" "Let apt reach the Debian mirror's $SUITE suite (a proxy in /etc/apt/apt.conf.d, or PREBUILT_EROFS_SUITE), then run this script again."
(cd "$src" && dpkg-source -x --no-check ./*.dsc tree) >>"$WORK/build.log" 2>&1 ||
  fail "dpkg-source -x of $SUITE's erofs-utils failed (log: $WORK/build.log)" "See the log; the downloaded files are in $src."

say "configure + make (log: $WORK/build.log)"
(
  cd "$src/tree"
  ./autogen.sh
  ./configure --prefix=/usr/local --enable-lz4 --with-libzstd --with-zlib --disable-lzma --disable-fuse \
    --without-libdeflate --without-qpl --without-xxhash --without-selinux
  make -j"$(nproc)"
) >>"$WORK/build.log" 2>&1 || fail "the erofs-utils build failed (log: $WORK/build.log)" "See the end of the log: a missing build dependency is named there."

# Atomically, each: a containerd started meanwhile finds the old mkfs.erofs or the new one, never none.
for tool in mkfs dump fsck; do
  install -m 0755 "$src/tree/$tool/$tool.erofs" "$BIN_DIR/$tool.erofs.new"
  mv -f "$BIN_DIR/$tool.erofs.new" "$BIN_DIR/$tool.erofs"
done
have_version="$(mkfs_erofs_version "$BIN_DIR/mkfs.erofs")"
recent_enough "$have_version" || fail "the built $BIN_DIR/mkfs.erofs reports '${have_version:-nothing}', not >= 1.8" "See $WORK/build.log."
say "installed mkfs.erofs, fsck.erofs and dump.erofs $have_version into $BIN_DIR"
