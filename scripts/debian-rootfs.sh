# Sourced, not run: what scripts/test-services.sh (the test base image) and bench/base-image.sh
# (the bench's base image) both do to make a Debian root file system with debootstrap.

# The first Debian mirror in /etc/apt that serves suite $1 (deb822 .sources or one-line .list),
# else deb.debian.org.
apt_mirror() {
  local suite="$1" f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v suite="$suite" '
      function flush() { if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && uri != "" && enabled != "no") { print uri; found=1; exit } types=""; suites=""; uri=""; enabled="" }
      /^[ \t]*$/ { flush(); next }
      /^[ \t]*#/ { next }
      tolower($1)=="types:" { $1=""; types=$0 }
      tolower($1)=="uris:" { uri=$2 }
      tolower($1)=="suites:" { $1=""; suites=$0 }
      tolower($1)=="enabled:" { enabled=tolower($2) }
      END { if (!found) flush() }
    ' "$f"
  done | head -n 1 | grep . && return 0
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk -v suite="$suite" '$1=="deb" { i=2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i+1)==suite) { print $i; exit } }' |
    head -n 1 | grep . && return 0
  echo "http://deb.debian.org/debian"
}

# debian_rootfs_tar TARBALL BUILD LOG SUITE VARIANT INCLUDE MIRROR ARCH
# Bootstraps SUITE (--variant VARIANT, --include INCLUDE, from MIRROR, for ARCH) in the directory
# BUILD, removes apt's lists and caches, and tars it with numeric owners into TARBALL (written
# beside it, then moved into place); BUILD is removed either way. debootstrap's output goes to
# LOG; when it fails, the last 20 lines of LOG go to stderr and its exit status is returned.
debian_rootfs_tar() {
  local tarball="$1" build="$2" log="$3" suite="$4" variant="$5" include="$6" mirror="$7" arch="$8"
  local rc=0
  rm -rf --one-file-system "$build"
  mkdir -p "$build"
  debootstrap --variant="$variant" --include="$include" --arch="$arch" "$suite" "$build" "$mirror" >"$log" 2>&1 || rc=$?
  # Whatever debootstrap mounted inside must be gone before anything there is removed.
  awk -v d="$build/" 'index($2, d)==1 {print $2}' /proc/mounts | sort -r | xargs -r umount -l 2>/dev/null || true
  if [ "$rc" != 0 ]; then
    tail -n 20 "$log" >&2 || true
    rm -rf --one-file-system "$build"
    return "$rc"
  fi
  rm -rf "$build/var/lib/apt/lists/"* "$build/var/cache/apt/"*.bin "$build/var/cache/apt/archives/"*.deb
  # Called in a condition, `set -e` does not stop here: each step says how it went.
  tar --numeric-owner -C "$build" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball" || rc=$?
  rm -rf --one-file-system "$build"
  [ "$rc" = 0 ] || rm -f "$tarball.tmp"
  return "$rc"
}
