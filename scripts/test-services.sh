#!/usr/bin/env bash
# Test services for prebuilt: a Docker daemon, the reference registry in three flavours and a
# debootstrap base image, all on 127.0.0.1; beside them the modern runtimes users run (Docker
# Engine 26 with its containerd 1.7, and the buildx plugin) from Debian trixie's packages, and
# containerd 2.1 (erofs snapshotter and differ) from Debian forky's.
#
#   bash scripts/test-services.sh up      install what is missing (apt), start what is not running,
#                                         write services.json and print it (without passwords)
#   bash scripts/test-services.sh status  probe every service, print one line each and the JSON path
#   bash scripts/test-services.sh down    stop what this script started (by recorded process id)
#
# `up` is idempotent: it reuses a running Docker daemon, running registries and a base image that
# is already in the registry; it is meant to run as root on a Debian 12 machine. What it cannot
# provide (not root, no apt, a port taken by something else) is listed under "missing" in the JSON
# and tests that need it skip saying so.
#
# Network rule: everything listens on 127.0.0.1; dockerd runs without a bridge, without iptables
# and without masquerading, so every container must use host networking.
#
# Modern runtimes: trixie's docker.io, containerd and docker-buildx are fetched with apt (a private
# sources list and cache, signature-checked with bookworm's debian-archive-keyring; nothing is
# installed into the system) and unpacked with dpkg -x into $STATE_DIR/trixie/root. The buildx
# plugin is copied to /usr/local/libexec/docker/cli-plugins; a second dockerd (26.1) runs from that
# root on $STATE_DIR/modern-docker/docker.sock with its own data and exec root, pid file,
# containerd namespace and cgroup parent, beside (never instead of) the system's Docker 20.10.
# A third dockerd, the same 26.1 binaries with the containerd image store (daemon.json feature
# containerd-snapshotter, the default of Docker Engine 29 and Docker Desktop), runs the same way on
# $STATE_DIR/containerd-store-docker/docker.sock with its own managed containerd.
#
# containerd 2.1: forky's containerd package (containerd, ctr, containerd-shim-runc-v2; forky's runc
# needs glibc 2.38, so containers use the system's runc) is fetched and unpacked the same way into
# $STATE_DIR/forky/root. No daemon runs from it here: a test file starts a private containerd
# from it with the erofs snapshotter and differ (packages/oci/src/__fixtures__/erofs-containerd.ts),
# the way the stargz tests start theirs. The erofs differ runs `mkfs.erofs --tar=f`: erofs-utils
# >= 1.8 must be on PATH (scripts/build-erofs-utils.sh, run by scripts/setup.sh, builds it into
# /usr/local/bin); without either, services.json says so under "missing".
#
# Settings (environment):
#   PREBUILT_TEST_SERVICES_DIR         state directory       (default /var/tmp/prebuilt-test-services; only root or you may write it)
#   PREBUILT_TEST_REGISTRY_PORT        no-auth registry      (default 5100)
#   PREBUILT_TEST_BASIC_REGISTRY_PORT  htpasswd registry     (default 5101)
#   PREBUILT_TEST_TOKEN_REGISTRY_PORT  Bearer-token registry (default 5102)
#   PREBUILT_TEST_TOKEN_SERVER_PORT    its token server      (default 5103)
#   PREBUILT_TEST_DOCKER_DATA_ROOT     dockerd --data-root   (default /var/lib/docker)
#   DOCKER_HOST                        an existing daemon to use instead of /var/run/docker.sock
#   PREBUILT_TEST_MODERN_SUITE         Debian suite of the modern runtimes (default trixie)
#   PREBUILT_TEST_EROFS_SUITE          Debian suite of containerd >= 2.1    (default forky)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=debian-rootfs.sh
. "$SCRIPT_DIR/debian-rootfs.sh"
STATE_DIR="${PREBUILT_TEST_SERVICES_DIR:-/var/tmp/prebuilt-test-services}"
PLAIN_PORT="${PREBUILT_TEST_REGISTRY_PORT:-5100}"
BASIC_PORT="${PREBUILT_TEST_BASIC_REGISTRY_PORT:-5101}"
TOKEN_PORT="${PREBUILT_TEST_TOKEN_REGISTRY_PORT:-5102}"
TOKEN_SERVER_PORT="${PREBUILT_TEST_TOKEN_SERVER_PORT:-5103}"
DOCKER_DATA_ROOT="${PREBUILT_TEST_DOCKER_DATA_ROOT:-/var/lib/docker}"
DEFAULT_DOCKER_SOCK=/var/run/docker.sock

REGISTRY_USER=prebuilt-test
TOKEN_SERVICE=prebuilt-test-registry
TOKEN_ISSUER=prebuilt-test-token-server
BASE_SUITE=bookworm
BASE_VARIANT=minbase
BASE_INCLUDE=python3-minimal,ca-certificates
BASE_REPO=prebuilt-test/base
BASE_TAG=bookworm
# Bump when the way the base image is made changes, so cached tarballs and images are rebuilt.
BASE_RECIPE=1

# The modern runtimes: Debian packages of a newer suite, unpacked into a private root.
MODERN_SUITE="${PREBUILT_TEST_MODERN_SUITE:-trixie}"
MODERN_PACKAGES=(docker.io containerd docker-buildx)
MODERN_DIR="$STATE_DIR/$MODERN_SUITE"
MODERN_ROOT="$MODERN_DIR/root"
MODERN_DOCKER_DIR="$STATE_DIR/modern-docker"
CSTORE_DOCKER_DIR="$STATE_DIR/containerd-store-docker"
CSTORE_DRIVER_TYPE=io.containerd.snapshotter.v1
BUILDX_PLUGIN=/usr/local/libexec/docker/cli-plugins/docker-buildx
# containerd >= 2.1 (its erofs snapshotter and differ) from a newer suite still, unpacked the same
# way; no daemon runs from it here: each test file starts a private one (packages/oci's fixtures).
EROFS_SUITE="${PREBUILT_TEST_EROFS_SUITE:-forky}"
EROFS_PACKAGES=(containerd)
EROFS_DIR="$STATE_DIR/$EROFS_SUITE"
EROFS_ROOT="$EROFS_DIR/root"
EROFS_LABEL="containerd 2.1 for the erofs snapshotter"

JSON_FILE="$STATE_DIR/services.json"
MISSING=()
APT_UPDATED=0
DOCKER_HOST_URL=""
REGISTRIES_OK=1
BASE_REF=""
BASE_DIGEST=""
MODERN_OK=0
MODERN_DOCKER_URL=""
MODERN_DOCKER_VERSION=""
CSTORE_DOCKER_URL=""
CSTORE_DOCKER_VERSION=""
BUILDX_VERSION=""
EROFS_CONTAINERD_VERSION=""
MKFS_EROFS_PATH=""
MKFS_EROFS_VERSION=""

log() { printf '[test-services] %s\n' "$*" >&2; }
missing() {
  MISSING+=("$*")
  log "MISSING: $*"
}
is_root() { [ "$(id -u)" = 0 ]; }
# Makes directory $1 (mode 0755) unless it exists, then checks that nobody but this user and root
# can change what is in it: a directory, not a symlink, owned by this user or root, writable by no
# group or other. Its default places are in /var/tmp, which every user writes: one who made it
# first could otherwise swap what root downloads, builds and runs there. Fails saying so.
private_dir() {
  local dir="$1" owner mode
  # shellcheck disable=SC2174 # -m for $dir itself: its parents are made as by mkdir -p
  [ -L "$dir" ] || [ -e "$dir" ] || mkdir -p -m 0755 -- "$dir" || return 1
  if [ -L "$dir" ] || [ ! -d "$dir" ]; then
    printf '%s\n' "$dir is not a directory (a symlink or a file): remove it, or set its variable to a directory only you and root can write." >&2
    return 1
  fi
  owner="$(stat -c %u -- "$dir")"
  mode="$(stat -c %a -- "$dir")"
  if { [ "$owner" != 0 ] && [ "$owner" != "$(id -u)" ]; } || (((8#$mode & 8#022) != 0)); then
    printf '%s\n' "$dir is owned by uid $owner with mode $mode: another user could change what is run from it. Remove it (it is made again), or set its variable to a directory only you and root can write." >&2
    return 1
  fi
}
have() { command -v "$1" >/dev/null 2>&1; }
pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
read_pid() { [ -f "$1" ] && tr -dc '0-9' <"$1" || true; }
# The process recorded in pid file $1 is alive and its command line contains $2 (a pid file that
# survived a reboot may name an unrelated process, which must never be stopped).
owns() {
  local pid
  pid="$(read_pid "$1")"
  pid_alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2"
}

usage() {
  sed -n '2,47p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
}

# ---------------------------------------------------------------------------------------------
# Packages

# command → Debian package that provides it
PACKAGES=(
  curl:curl
  ip:iproute2
  openssl:openssl
  dockerd:docker.io
  docker:docker.io
  docker-registry:docker-registry
  htpasswd:apache2-utils
  debootstrap:debootstrap
  skopeo:skopeo
)

ensure_packages() {
  local want=() entry cmd pkg
  for entry in "${PACKAGES[@]}"; do
    cmd="${entry%%:*}" pkg="${entry#*:}"
    if ! have "$cmd" && [[ " ${want[*]-} " != *" $pkg "* ]]; then want+=("$pkg"); fi
  done
  [ "${#want[@]}" -eq 0 ] && return 0
  if ! is_root || ! have apt-get; then
    missing "packages ${want[*]} are not installed: run as root on Debian (apt-get install -y ${want[*]}) or install them yourself"
    return 0
  fi
  log "installing with apt: ${want[*]}"
  # Keep the packages' init scripts from starting a docker daemon with a bridge, or a registry on
  # :5000, while they install: a policy-rc.d that forbids starting services (only if none exists).
  local policy=/usr/sbin/policy-rc.d own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
  fi
  local rc=0
  {
    if [ "$APT_UPDATED" = 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 && APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${want[@]}" >&2
  } || rc=$?
  [ "$own_policy" = 1 ] && rm -f "$policy"
  if [ "$rc" != 0 ]; then
    missing "apt-get install ${want[*]} failed (exit $rc): see the output above"
  fi
}

# ---------------------------------------------------------------------------------------------
# Docker daemon

docker_answers() { DOCKER_HOST="$1" docker version >/dev/null 2>&1; }

ensure_docker() {
  if ! have docker; then
    missing "docker CLI not found: install docker.io (apt-get install -y docker.io)"
    return 0
  fi
  if [ -n "${DOCKER_HOST:-}" ] && docker_answers "$DOCKER_HOST"; then
    DOCKER_HOST_URL="$DOCKER_HOST"
    log "docker: using the daemon at DOCKER_HOST=$DOCKER_HOST"
    return 0
  fi
  local url="unix://$DEFAULT_DOCKER_SOCK"
  if docker_answers "$url"; then
    DOCKER_HOST_URL="$url"
    log "docker: reusing the running daemon at $url"
    return 0
  fi
  if ! have dockerd; then
    missing "Docker daemon not running and dockerd not installed: apt-get install -y docker.io, then run this script as root"
    return 0
  fi
  if ! is_root; then
    missing "Docker daemon not running at $url and starting it needs root: run 'sudo bash scripts/test-services.sh up'"
    return 0
  fi
  # A docker0 bridge left by a daemon started without --bridge=none must go.
  if have ip && ip link show docker0 >/dev/null 2>&1; then
    log "docker: deleting stale docker0 bridge"
    ip link delete docker0 || true
  fi
  local old
  old="$(read_pid /var/run/docker.pid)"
  if pid_alive "$old"; then
    missing "a dockerd (pid $old) is running but does not answer at $url: stop it or set DOCKER_HOST"
    return 0
  fi
  mkdir -p "$DOCKER_DATA_ROOT"
  log "docker: starting dockerd (no bridge, no iptables), log in $STATE_DIR/dockerd.log"
  setsid dockerd --bridge=none --iptables=false --ip-masq=false \
    --host="$url" --data-root="$DOCKER_DATA_ROOT" \
    </dev/null >>"$STATE_DIR/dockerd.log" 2>&1 9>&- &
  local pid=$!
  if wait_for_docker "$url" "$pid" "$STATE_DIR/dockerd.log"; then
    local daemon_pid
    daemon_pid="$(read_pid /var/run/docker.pid)"
    echo "${daemon_pid:-$pid}" >"$STATE_DIR/dockerd.pid"
    DOCKER_HOST_URL="$url"
    return 0
  fi
  missing "dockerd did not start (see $STATE_DIR/dockerd.log)"
}

# Waits up to a minute for the dockerd started as process $2 to answer at $1; shows the end of its
# log $3 when it does not.
wait_for_docker() {
  local url="$1" pid="$2" logfile="$3" i
  for i in $(seq 1 120); do
    if docker_answers "$url"; then
      log "docker: daemon at $url ready after ${i}x0.5s"
      return 0
    fi
    pid_alive "$pid" || break
    sleep 0.5
  done
  tail -n 20 "$logfile" >&2 || true
  return 1
}

# Stops the dockerd recorded in pid file $1 when its command line contains $2 (a stale pid file is
# only removed), waiting up to 30 s for it to stop its containers and containerd.
stop_dockerd() {
  local file="$1" pattern="$2" pid i
  [ -f "$file" ] || return 0
  pid="$(read_pid "$file")"
  if owns "$file" "$pattern"; then
    log "stopping dockerd (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 150); do pid_alive "$pid" || break; sleep 0.2; done
  fi
  rm -f "$file"
}

# ---------------------------------------------------------------------------------------------
# Secrets that must stay stable across runs (registry passwords, registry HTTP secrets)

load_secrets() {
  local file="$STATE_DIR/secrets.env"
  if [ ! -s "$file" ]; then
    local tmp="$file.tmp.$$"
    (
      umask 077
      {
        echo "BASIC_PASSWORD=$(openssl rand -hex 16)"
        echo "TOKEN_PASSWORD=$(openssl rand -hex 16)"
        echo "HTTP_SECRET=$(openssl rand -hex 24)"
      } >"$tmp"
    )
    mv "$tmp" "$file"
  fi
  # shellcheck disable=SC1090
  . "$file"
}

# ---------------------------------------------------------------------------------------------
# Registries and the token server

# Prints the HTTP status and the WWW-Authenticate scheme of GET /v2/, e.g. "200 " or "401 Bearer".
probe_v2() {
  local port="$1" out code scheme
  out="$(curl -s -m 3 -o /dev/null -D - "http://127.0.0.1:$port/v2/" 2>/dev/null || true)"
  code="$(printf '%s' "$out" | awk 'toupper($1) ~ /^HTTP\// {c=$2} END {print c}')"
  scheme="$(printf '%s' "$out" | tr -d '\r' | awk 'tolower($1)=="www-authenticate:" {print $2}' | head -n 1)"
  printf '%s %s' "${code:-000}" "$scheme"
}

registry_expected() {
  case "$1" in
    plain) echo "200 " ;;
    basic) echo "401 Basic" ;;
    token) echo "401 Bearer" ;;
  esac
}

registry_port() {
  case "$1" in
    plain) echo "$PLAIN_PORT" ;;
    basic) echo "$BASIC_PORT" ;;
    token) echo "$TOKEN_PORT" ;;
  esac
}

# Writes $2 to $1 atomically; returns 0 when the content changed.
write_if_changed() {
  local file="$1" content="$2"
  if [ -f "$file" ] && [ "$(cat "$file")" = "$content" ]; then return 1; fi
  local tmp="$file.tmp.$$"
  (umask 077 && printf '%s\n' "$content" >"$tmp")
  mv "$tmp" "$file"
  return 0
}

stop_pidfile() {
  local file="$1" pattern="$2" pid i
  pid="$(read_pid "$file")"
  if owns "$file" "$pattern"; then
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do pid_alive "$pid" || break; sleep 0.1; done
    pid_alive "$pid" && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

registry_config() {
  local flavour="$1" dir="$2" port="$3"
  cat <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: $HTTP_SECRET
EOF
  case "$flavour" in
    basic)
      cat <<EOF
auth:
  htpasswd:
    realm: prebuilt-test
    path: $dir/htpasswd
EOF
      ;;
    token)
      cat <<EOF
auth:
  token:
    realm: http://127.0.0.1:$TOKEN_SERVER_PORT/token
    service: $TOKEN_SERVICE
    issuer: $TOKEN_ISSUER
    rootcertbundle: $STATE_DIR/token-server/cert.pem
EOF
      ;;
  esac
}

ensure_htpasswd() {
  local file="$1" stamp="$1.for"
  have htpasswd || return 1
  local want
  want="$(printf '%s:%s' "$REGISTRY_USER" "$BASIC_PASSWORD" | sha256sum | cut -c1-64)"
  if [ -s "$file" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 1; fi
  (umask 077 && printf '%s' "$BASIC_PASSWORD" | htpasswd -B -i -c "$file.tmp" "$REGISTRY_USER" 2>/dev/null)
  mv "$file.tmp" "$file"
  echo "$want" >"$stamp"
  return 0
}

ensure_token_keys() {
  local dir="$STATE_DIR/token-server"
  mkdir -p "$dir"
  if [ -s "$dir/key.pem" ] && [ -s "$dir/cert.pem" ]; then return 0; fi
  log "token server: generating a signing key and its self-signed certificate"
  (
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
      -subj "/CN=$TOKEN_ISSUER" \
      -keyout "$dir/key.pem.tmp" -out "$dir/cert.pem.tmp" 2>/dev/null
  )
  mv "$dir/key.pem.tmp" "$dir/key.pem"
  mv "$dir/cert.pem.tmp" "$dir/cert.pem"
}

ensure_token_server() {
  local dir="$STATE_DIR/token-server" changed=0
  if ! have node; then
    missing "node not found: the token server needs Node 20"
    return 1
  fi
  ensure_token_keys
  local hash config
  hash="$(printf '%s' "$TOKEN_PASSWORD" | sha256sum | cut -c1-64)"
  config="$(
    cat <<EOF
{
  "host": "127.0.0.1",
  "port": $TOKEN_SERVER_PORT,
  "issuer": "$TOKEN_ISSUER",
  "service": "$TOKEN_SERVICE",
  "keyFile": "$dir/key.pem",
  "certFile": "$dir/cert.pem",
  "users": { "$REGISTRY_USER": "$hash" },
  "expiresIn": 300
}
EOF
  )"
  write_if_changed "$dir/config.json" "$config" && changed=1
  local healthy=0
  curl -sf -m 3 "http://127.0.0.1:$TOKEN_SERVER_PORT/healthz" 2>/dev/null | grep -q "\"$TOKEN_SERVICE\"" && healthy=1
  if [ "$healthy" = 1 ] && ! owns "$dir/pid" "$dir/config.json"; then
    missing "127.0.0.1:$TOKEN_SERVER_PORT answers like a token server that this script did not start (state dir $STATE_DIR): stop it or set PREBUILT_TEST_TOKEN_SERVER_PORT"
    return 1
  fi
  if [ "$changed" = 0 ] && [ "$healthy" = 1 ]; then
    log "token server: reusing 127.0.0.1:$TOKEN_SERVER_PORT"
    return 0
  fi
  stop_pidfile "$dir/pid" "$dir/config.json"
  log "token server: starting on 127.0.0.1:$TOKEN_SERVER_PORT"
  setsid node "$SCRIPT_DIR/token-server.mjs" "$dir/config.json" \
    </dev/null >>"$dir/log" 2>&1 9>&- &
  echo $! >"$dir/pid"
  local i
  for i in $(seq 1 50); do
    if curl -sf -m 2 "http://127.0.0.1:$TOKEN_SERVER_PORT/healthz" 2>/dev/null | grep -q "\"$TOKEN_SERVICE\""; then
      return 0
    fi
    pid_alive "$(read_pid "$dir/pid")" || break
    sleep 0.2
  done
  tail -n 5 "$dir/log" >&2 || true
  missing "token server did not answer on 127.0.0.1:$TOKEN_SERVER_PORT (port taken? see $dir/log)"
  return 1
}

ensure_registry() {
  local flavour="$1" port dir changed=0
  port="$(registry_port "$flavour")"
  dir="$STATE_DIR/registry-$flavour"
  mkdir -p "$dir/data"
  if [ "$flavour" = basic ]; then
    if ! have htpasswd; then
      missing "htpasswd not installed (Basic-auth registry): apt-get install -y apache2-utils"
      return 1
    fi
    ensure_htpasswd "$dir/htpasswd" && changed=1
  fi
  write_if_changed "$dir/config.yml" "$(registry_config "$flavour" "$dir" "$port")" && changed=1
  local expected
  expected="$(registry_expected "$flavour")"
  local answer
  answer="$(probe_v2 "$port")"
  if [ "$answer" != "000 " ] && ! owns "$dir/pid" "$dir/config.yml"; then
    missing "127.0.0.1:$port is taken by a server this script did not start (GET /v2/ → ${answer% }): stop it or choose another port (see scripts/test-services.sh --help)"
    return 1
  fi
  if [ "$changed" = 0 ] && [ "$answer" = "$expected" ]; then
    log "registry $flavour: reusing 127.0.0.1:$port"
    return 0
  fi
  if ! have docker-registry; then
    missing "docker-registry not installed: apt-get install -y docker-registry"
    return 1
  fi
  stop_pidfile "$dir/pid" "$dir/config.yml"
  log "registry $flavour: starting on 127.0.0.1:$port"
  setsid docker-registry serve "$dir/config.yml" </dev/null >>"$dir/log" 2>&1 9>&- &
  echo $! >"$dir/pid"
  local i got=""
  for i in $(seq 1 50); do
    got="$(probe_v2 "$port")"
    [ "$got" = "$expected" ] && return 0
    pid_alive "$(read_pid "$dir/pid")" || break
    sleep 0.2
  done
  tail -n 5 "$dir/log" >&2 || true
  missing "registry $flavour did not answer as expected on 127.0.0.1:$port (got '$got', want '$expected'; port taken? see $dir/log)"
  return 1
}

ensure_registries() {
  load_secrets
  ensure_token_server || REGISTRIES_OK=0
  local flavour
  for flavour in plain basic token; do
    ensure_registry "$flavour" || REGISTRIES_OK=0
  done
}

# ---------------------------------------------------------------------------------------------
# Base image

# Digest of a tag in the no-auth registry, or nothing.
registry_digest() {
  local repo="$1" tag="$2"
  curl -s -m 10 -o /dev/null -D - -I \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
    -H 'Accept: application/vnd.oci.image.index.v1+json' \
    "http://127.0.0.1:$PLAIN_PORT/v2/$repo/manifests/$tag" 2>/dev/null |
    tr -d '\r' | awk 'tolower($1)=="docker-content-digest:" {print $2}' || true
}

build_rootfs() {
  local tarball="$1" mirror="$2" arch="$3"
  local build="$STATE_DIR/rootfs/build.$$"
  if ! is_root; then
    missing "base image: debootstrap needs root: run 'sudo bash scripts/test-services.sh up'"
    return 1
  fi
  if ! have debootstrap; then
    missing "base image: debootstrap not installed: apt-get install -y debootstrap"
    return 1
  fi
  log "base image: debootstrap $BASE_VARIANT $BASE_SUITE from $mirror (a few minutes, log in $STATE_DIR/debootstrap.log)"
  local rc=0
  debian_rootfs_tar "$tarball" "$build" "$STATE_DIR/debootstrap.log" "$BASE_SUITE" "$BASE_VARIANT" "$BASE_INCLUDE" "$mirror" "$arch" || rc=$?
  if [ "$rc" != 0 ]; then
    missing "base image: debootstrap or tar failed (exit $rc, see $STATE_DIR/debootstrap.log)"
    return 1
  fi
  log "base image: cached rootfs in $tarball"
}

ensure_base_image() {
  if [ "$REGISTRIES_OK" != 1 ]; then
    missing "base image: needs the no-auth registry, which is not running"
    return 0
  fi
  local mirror arch key tarball record repo_ref
  mirror="$(apt_mirror "$BASE_SUITE")"
  arch="$(dpkg --print-architecture 2>/dev/null || echo amd64)"
  key="$(printf '%s\n' "$BASE_RECIPE" "$BASE_SUITE" "$BASE_VARIANT" "$BASE_INCLUDE" "$mirror" "$arch" | sha256sum | cut -c1-16)"
  BASE_REF="127.0.0.1:$PLAIN_PORT/$BASE_REPO:$BASE_TAG"
  record="$STATE_DIR/base-image.txt"
  local digest
  digest="$(registry_digest "$BASE_REPO" "$BASE_TAG")"
  if [ -n "$digest" ] && [ -f "$record" ] && [ "$(cat "$record")" = "$key $BASE_REF $digest" ]; then
    BASE_DIGEST="$digest"
    log "base image: reusing $BASE_REF@$digest"
    return 0
  fi
  if [ -z "$DOCKER_HOST_URL" ]; then
    missing "base image: needs the Docker daemon (docker import + push), which is not running"
    BASE_REF=""
    return 0
  fi
  mkdir -p "$STATE_DIR/rootfs"
  tarball="$STATE_DIR/rootfs/$BASE_SUITE-$BASE_VARIANT-$key.tar"
  if [ ! -s "$tarball" ]; then
    build_rootfs "$tarball" "$mirror" "$arch" || {
      BASE_REF=""
      return 0
    }
  else
    log "base image: using cached rootfs $tarball"
  fi
  log "base image: docker import + push $BASE_REF"
  if ! DOCKER_HOST="$DOCKER_HOST_URL" docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    --change "LABEL org.prebuilt.test-base-key=$key" \
    - "$BASE_REF" <"$tarball" >/dev/null; then
    missing "base image: docker import of $tarball failed (delete it to rebuild)"
    BASE_REF=""
    return 0
  fi
  if ! DOCKER_HOST="$DOCKER_HOST_URL" docker push "$BASE_REF" >"$STATE_DIR/push.log" 2>&1; then
    tail -n 10 "$STATE_DIR/push.log" >&2 || true
    missing "base image: docker push $BASE_REF failed (see $STATE_DIR/push.log)"
    BASE_REF=""
    return 0
  fi
  digest="$(registry_digest "$BASE_REPO" "$BASE_TAG")"
  if [ -z "$digest" ]; then
    missing "base image: pushed $BASE_REF but the registry does not list it"
    BASE_REF=""
    return 0
  fi
  echo "$key $BASE_REF $digest" >"$record"
  BASE_DIGEST="$digest"
  log "base image: $BASE_REF@$digest"
}

# ---------------------------------------------------------------------------------------------
# Modern runtimes: Debian trixie's Docker Engine 26 (with its containerd 1.7) and buildx plugin,
# fetched by apt into a private cache and unpacked into a private root (no mixing of releases:
# nothing is installed into the system, except the buildx plugin the docker CLI looks for).

# apt-get with a private sources list, package lists and cache under $1/apt.
suite_apt() {
  local d="$1/apt"
  shift
  apt-get -q -o Dir::Etc::SourceList="$d/sources.list" -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::State::Lists="$d/lists" -o Dir::Cache="$d/cache" -o APT::Get::List-Cleanup=0 "$@"
}

# What an unpacked root is made from ($1 suite, $2 mirror, then the packages); a root whose record
# differs is fetched again.
suite_recipe() { printf '%s\n' "recipe 1" "$1" "$2" "${*:3}"; }

# Records root $1/root as missing: its label $2, why $3, what skips until then $4.
suite_fetch_failed() {
  tail -n 5 "$1/apt.log" >&2 2>/dev/null || true
  missing "$2: $3 (log: $1/apt.log). Let apt reach the Debian mirror's $(basename "$1") suite (a proxy setting in /etc/apt/apt.conf.d), then run this script again; until then $4"
}

# Downloads Debian suite packages with apt (the suite's Release file is checked against bookworm's
# debian-archive-keyring, the debs against its hashes) and unpacks them (dpkg-deb -x, nothing is
# installed) into a fresh $dir/root, swapped in at the end so that a failure leaves the old root (or
# none), never half of one. Arguments: the directory (named after the suite), the mirror, the label
# and what skips without it (for messages), a command run just before the swap (stops what runs
# from the old root), then the packages.
fetch_suite_root() {
  local dir="$1" mirror="$2" label="$3" skips="$4" before_swap="$5"
  shift 5
  local suite root="$dir/root" d="$dir/apt" keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  suite="$(basename "$dir")"
  if ! is_root || ! have apt-get || ! have dpkg-deb; then
    missing "$label: fetching Debian $suite's $* needs root, apt-get and dpkg-deb: run 'sudo bash scripts/test-services.sh up' on Debian"
    return 1
  fi
  if [ ! -s "$keyring" ]; then
    missing "$label: $keyring is missing, so $suite's packages cannot be checked: apt-get install -y debian-archive-keyring"
    return 1
  fi
  rm -rf "$d/debs"
  mkdir -p "$d/lists/partial" "$d/cache/archives/partial" "$d/debs"
  echo "deb [signed-by=$keyring] $mirror $suite main" >"$d/sources.list"
  log "$label: apt-get download $* from $mirror $suite into $root"
  if ! { suite_apt "$dir" update && (cd "$d/debs" && suite_apt "$dir" download "$@"); } >"$dir/apt.log" 2>&1; then
    suite_fetch_failed "$dir" "$label" "apt could not fetch $* from $mirror $suite" "$skips"
    return 1
  fi
  local tmp="$root.tmp.$$" deb
  rm -rf "$tmp"
  mkdir -p "$tmp"
  for deb in "$d/debs"/*.deb; do
    if ! dpkg-deb -x "$deb" "$tmp" 2>>"$dir/apt.log"; then
      rm -rf "$tmp"
      suite_fetch_failed "$dir" "$label" "dpkg-deb -x $deb failed" "$skips"
      return 1
    fi
    dpkg-deb -W --showformat='${Package} ${Version}\n' "$deb" >>"$tmp/.prebuilt-versions"
  done
  suite_recipe "$suite" "$mirror" "$@" >"$tmp/.prebuilt-recipe"
  rm -rf "$d/debs"
  $before_swap
  rm -rf "$root"
  mv "$tmp" "$root"
  log "$label: $(paste -sd ',' "$root/.prebuilt-versions" | sed 's/,/, /g')"
}

# Fetches the root of $1 (see fetch_suite_root) unless the one there has executable $2 and the same
# recipe; the other arguments are fetch_suite_root's from the label on. Fails when there is none.
ensure_suite_root() {
  local dir="$1" binary="$2" label="$3" mirror
  shift 2
  mirror="$(apt_mirror "$BASE_SUITE")"
  mkdir -p "$dir"
  if [ -x "$dir/root/$binary" ] && [ "$(cat "$dir/root/.prebuilt-recipe" 2>/dev/null)" = "$(suite_recipe "$(basename "$dir")" "$mirror" "${@:4}")" ]; then
    log "$label: reusing $dir/root"
  else
    fetch_suite_root "$dir" "$mirror" "$@" || return 1
  fi
}

stop_modern_dockerds() {
  stop_dockerd "$MODERN_DOCKER_DIR/dockerd.pid" "$MODERN_DOCKER_DIR/data"
  stop_dockerd "$CSTORE_DOCKER_DIR/dockerd.pid" "$CSTORE_DOCKER_DIR/data"
}

ensure_modern_root() {
  ensure_suite_root "$MODERN_DIR" usr/sbin/dockerd "modern runtimes (Docker 26, containerd 1.7, buildx)" \
    "the tests that need Docker >= 23 or buildx skip (PREBUILT_TEST_MODERN_SUITE names another suite)" stop_modern_dockerds "${MODERN_PACKAGES[@]}" || return 0
  MODERN_OK=1
}

# The version of containerd binary $1 ("2.1.9+unknown"), of mkfs.erofs $1 (default: the one on
# PATH; "1.8.6"); empty when it does not run. Whether version $1 is at least $2.
containerd_version() { "$1" --version 2>/dev/null | awk 'NR==1 { print $3 }' || true; }
mkfs_erofs_version() { "${1:-mkfs.erofs}" --version 2>/dev/null | awk 'NR==1 { print $NF }' || true; }
at_least() { [ -n "$1" ] && printf '%s\n' "$2" "$1" | sort -C -V; }

# containerd >= 2.1 unpacked from Debian $EROFS_SUITE, and the mkfs.erofs >= 1.8 its erofs differ runs
# (scripts/build-erofs-utils.sh builds it): both, or a missing entry saying what to run.
ensure_erofs_containerd() {
  local skips="the erofs snapshotter tests skip, and fail in CI (PREBUILT_TEST_EROFS_SUITE names another suite)" version
  ensure_suite_root "$EROFS_DIR" usr/bin/containerd "$EROFS_LABEL" "$skips" true "${EROFS_PACKAGES[@]}" || return 0
  version="$(containerd_version "$EROFS_ROOT/usr/bin/containerd")"
  if ! at_least "$version" 2.1; then
    missing "$EROFS_LABEL: $EROFS_ROOT/usr/bin/containerd reports '${version:-nothing}', not >= 2.1 (Debian $EROFS_SUITE's containerd): set PREBUILT_TEST_EROFS_SUITE to a suite with containerd >= 2.1, then run this script again"
    return 0
  fi
  MKFS_EROFS_VERSION="$(mkfs_erofs_version)"
  if ! at_least "$MKFS_EROFS_VERSION" 1.8; then
    missing "$EROFS_LABEL: its erofs differ runs mkfs.erofs --tar=f, which needs erofs-utils >= 1.8; the mkfs.erofs on PATH is ${MKFS_EROFS_VERSION:-absent}: run 'sudo bash scripts/build-erofs-utils.sh' (scripts/setup.sh runs it), then this script again"
    MKFS_EROFS_VERSION=""
    return 0
  fi
  MKFS_EROFS_PATH="$(command -v mkfs.erofs)"
  EROFS_CONTAINERD_VERSION="$version"
}

sha_of() { sha256sum "$1" 2>/dev/null | cut -c1-64; }

# The version of the Docker daemon at $1, of the docker CLI's buildx plugin; empty when it does not answer.
server_version() { DOCKER_HOST="$1" docker version --format '{{.Server.Version}}' 2>/dev/null || true; }
buildx_version() { docker buildx version 2>/dev/null | awk '{print $2; exit}' || true; }

# Copies the buildx plugin where every docker CLI looks for plugins, unless a plugin that this
# script did not put there is already in that place.
ensure_buildx() {
  local src="$MODERN_ROOT/usr/libexec/docker/cli-plugins/docker-buildx" record="$MODERN_DIR/buildx-installed.sha256"
  if [ "$MODERN_OK" = 1 ] && [ -x "$src" ] && ! cmp -s "$src" "$BUILDX_PLUGIN"; then
    if [ -e "$BUILDX_PLUGIN" ] && [ "$(sha_of "$BUILDX_PLUGIN")" != "$(cat "$record" 2>/dev/null)" ]; then
      log "buildx: keeping $BUILDX_PLUGIN (not installed by this script)"
    else
      log "buildx: installing $BUILDX_PLUGIN from $MODERN_ROOT"
      mkdir -p "$(dirname "$BUILDX_PLUGIN")"
      cp "$src" "$BUILDX_PLUGIN.tmp.$$" && chmod 755 "$BUILDX_PLUGIN.tmp.$$" && mv "$BUILDX_PLUGIN.tmp.$$" "$BUILDX_PLUGIN"
      sha_of "$BUILDX_PLUGIN" >"$record"
    fi
  fi
  BUILDX_VERSION="$(buildx_version)"
  if [ -z "$BUILDX_VERSION" ]; then
    missing "the docker buildx plugin: 'docker buildx version' fails (it comes with the modern runtimes above, or install docker-buildx-plugin)"
  fi
}

# Starts (or reuses) a dockerd from the modern root in directory $1: its socket, data and exec root,
# pid file, log and daemon.json $3 are there, its containerd namespace and cgroup parent are named
# $2. Sets DOCKERD_URL and DOCKERD_VERSION when it answers; $4 names it in messages.
ensure_root_dockerd() {
  local dir="$1" name="$2" config="$3" label="$4" url="unix://$1/docker.sock"
  DOCKERD_URL="" DOCKERD_VERSION=""
  [ "$MODERN_OK" = 1 ] && have docker || return 0
  mkdir -p "$dir"
  write_if_changed "$dir/daemon.json" "$config" || true
  if docker_answers "$url"; then
    log "$label: reusing the running daemon at $url"
  elif owns "$dir/dockerd.pid" "$dir/data"; then
    missing "the $label dockerd (pid $(read_pid "$dir/dockerd.pid")) runs but does not answer at $url: run 'bash scripts/test-services.sh down', then up"
    return 0
  else
    rm -f "$dir/dockerd.pid"
    log "$label: starting $MODERN_ROOT/usr/sbin/dockerd on $url (no bridge, no iptables), log in $dir/dockerd.log"
    # Its own managed containerd (1.7, from the root) and shims come first on PATH; runc is the system's.
    PATH="$MODERN_ROOT/usr/bin:$MODERN_ROOT/usr/sbin:$PATH" setsid "$MODERN_ROOT/usr/sbin/dockerd" \
      --config-file="$dir/daemon.json" --bridge=none --iptables=false --ip-masq=false --ip6tables=false \
      --host="$url" --data-root="$dir/data" --exec-root="$dir/exec" --pidfile="$dir/dockerd.pid" \
      --containerd-namespace="$name" --containerd-plugins-namespace="$name-plugins" \
      --cgroup-parent="$name-docker" \
      </dev/null >>"$dir/dockerd.log" 2>&1 9>&- &
    wait_for_docker "$url" $! "$dir/dockerd.log" || {
      missing "the $label dockerd did not start (see $dir/dockerd.log)"
      return 0
    }
  fi
  DOCKERD_URL="$url"
  DOCKERD_VERSION="$(server_version "$url")"
}

ensure_modern_docker() {
  ensure_root_dockerd "$MODERN_DOCKER_DIR" prebuilt-modern '{}' "modern docker"
  MODERN_DOCKER_URL="$DOCKERD_URL" MODERN_DOCKER_VERSION="$DOCKERD_VERSION"
}

# The storage driver type of the daemon at $1 as `docker info` reports it: io.containerd.snapshotter.v1
# when it keeps its images in containerd's store, empty for a graphdriver (overlay2) daemon.
driver_type() {
  DOCKER_HOST="$1" docker info --format '{{range .DriverStatus}}{{if eq (index . 0) "driver-type"}}{{index . 1}}{{end}}{{end}}' 2>/dev/null || true
}

# The same Docker 26.1 with the containerd image store (the default of Docker Engine 29 and Docker
# Desktop): images, their IDs, save/load and pushes go through containerd's content store and
# snapshotters instead of the overlay2 graphdriver.
ensure_containerd_store_docker() {
  ensure_root_dockerd "$CSTORE_DOCKER_DIR" prebuilt-c8d-store '{ "features": { "containerd-snapshotter": true } }' "containerd-store docker"
  [ -n "$DOCKERD_URL" ] || return 0
  local type
  type="$(driver_type "$DOCKERD_URL")"
  if [ "$type" != "$CSTORE_DRIVER_TYPE" ]; then
    missing "the containerd-store dockerd at $DOCKERD_URL reports driver-type '${type:-none}', not $CSTORE_DRIVER_TYPE: its $CSTORE_DOCKER_DIR/daemon.json must enable the containerd-snapshotter feature; run 'bash scripts/test-services.sh down', then up"
    return 0
  fi
  CSTORE_DOCKER_URL="$DOCKERD_URL" CSTORE_DOCKER_VERSION="$DOCKERD_VERSION"
}

# ---------------------------------------------------------------------------------------------
# services.json

write_json() {
  local missing_lines=""
  if [ "${#MISSING[@]}" -gt 0 ]; then missing_lines="$(printf '%s\n' "${MISSING[@]}")"; fi
  local tmp="$JSON_FILE.tmp.$$"
  (
    umask 077
    S_DOCKER="$DOCKER_HOST_URL" S_REG_OK="$REGISTRIES_OK" \
      S_PLAIN="127.0.0.1:$PLAIN_PORT" S_BASIC="127.0.0.1:$BASIC_PORT" S_TOKEN="127.0.0.1:$TOKEN_PORT" \
      S_USER="$REGISTRY_USER" S_BASIC_PW="${BASIC_PASSWORD:-}" S_TOKEN_PW="${TOKEN_PASSWORD:-}" \
      S_REALM="http://127.0.0.1:$TOKEN_SERVER_PORT/token" S_SERVICE="$TOKEN_SERVICE" S_ISSUER="$TOKEN_ISSUER" \
      S_BASE_REF="$BASE_REF" S_BASE_DIGEST="$BASE_DIGEST" S_MISSING="$missing_lines" S_STATE="$STATE_DIR" \
      S_MODERN_HOST="$MODERN_DOCKER_URL" S_MODERN_VERSION="$MODERN_DOCKER_VERSION" S_MODERN_ROOT="$MODERN_ROOT" \
      S_CSTORE_HOST="$CSTORE_DOCKER_URL" S_CSTORE_VERSION="$CSTORE_DOCKER_VERSION" S_BUILDX="$BUILDX_VERSION" \
      S_EROFS_VERSION="$EROFS_CONTAINERD_VERSION" S_EROFS_ROOT="$EROFS_ROOT" S_MKFS_PATH="$MKFS_EROFS_PATH" S_MKFS_VERSION="$MKFS_EROFS_VERSION" \
      node -e '
        const e = process.env;
        const json = {
          dockerHost: e.S_DOCKER || null,
          registries: e.S_REG_OK === "1" ? {
            plain: { host: e.S_PLAIN },
            basic: { host: e.S_BASIC, username: e.S_USER, password: e.S_BASIC_PW },
            token: { host: e.S_TOKEN, username: e.S_USER, password: e.S_TOKEN_PW,
                     realm: e.S_REALM, service: e.S_SERVICE, issuer: e.S_ISSUER },
          } : null,
          baseImage: e.S_BASE_REF && e.S_BASE_DIGEST ? { ref: e.S_BASE_REF, digest: e.S_BASE_DIGEST } : null,
          modernDocker: e.S_MODERN_HOST && e.S_MODERN_VERSION ? { host: e.S_MODERN_HOST, version: e.S_MODERN_VERSION, root: e.S_MODERN_ROOT } : null,
          containerdStoreDocker: e.S_CSTORE_HOST && e.S_CSTORE_VERSION ? { host: e.S_CSTORE_HOST, version: e.S_CSTORE_VERSION, root: e.S_MODERN_ROOT } : null,
          buildx: e.S_BUILDX ? { version: e.S_BUILDX } : null,
          erofsContainerd: e.S_EROFS_VERSION ? { version: e.S_EROFS_VERSION, root: e.S_EROFS_ROOT, mkfsErofs: { path: e.S_MKFS_PATH, version: e.S_MKFS_VERSION } } : null,
          missing: e.S_MISSING.split("\n").filter(Boolean),
          stateDir: e.S_STATE,
          writtenAt: new Date().toISOString(),
        };
        process.stdout.write(JSON.stringify(json, null, 2) + "\n");
      ' >"$tmp"
  )
  mv "$tmp" "$JSON_FILE"
}

# ---------------------------------------------------------------------------------------------
# Commands

cmd_up() {
  local started=$SECONDS
  ensure_packages
  if ! have node; then
    log "node not found: this script needs Node 20 (it writes services.json with it)"
    exit 1
  fi
  ensure_docker
  ensure_registries
  ensure_base_image
  ensure_modern_root
  ensure_buildx
  ensure_modern_docker
  ensure_containerd_store_docker
  ensure_erofs_containerd
  write_json
  log "up in $((SECONDS - started))s; wrote $JSON_FILE${MISSING[0]:+ (${#MISSING[@]} missing)}"
  # The same JSON on stdout, without the registry passwords (they stay in the file, mode 600).
  node -e '
    const json = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
    for (const r of Object.values(json.registries ?? {})) if ("password" in r) r.password = "(in " + process.argv[1] + ")";
    process.stdout.write(JSON.stringify(json, null, 2) + "\n");
  ' "$JSON_FILE"
}

status_line() { printf '%-16s %-6s %s\n' "$1" "$2" "$3"; }

cmd_status() {
  local bad=0 url="${DOCKER_HOST:-unix://$DEFAULT_DOCKER_SOCK}"
  if have docker && docker_answers "$url"; then status_line docker up "$url"; else
    status_line docker down "$url"
    bad=1
  fi
  local flavour port got
  for flavour in plain basic token; do
    port="$(registry_port "$flavour")"
    got="$(probe_v2 "$port")"
    if [ "$got" = "$(registry_expected "$flavour")" ]; then status_line "registry-$flavour" up "127.0.0.1:$port"; else
      status_line "registry-$flavour" down "127.0.0.1:$port (GET /v2/ → ${got% })"
      bad=1
    fi
  done
  if curl -sf -m 3 "http://127.0.0.1:$TOKEN_SERVER_PORT/healthz" >/dev/null 2>&1; then
    status_line token-server up "127.0.0.1:$TOKEN_SERVER_PORT"
  else
    status_line token-server down "127.0.0.1:$TOKEN_SERVER_PORT"
    bad=1
  fi
  local digest
  digest="$(registry_digest "$BASE_REPO" "$BASE_TAG")"
  if [ -n "$digest" ]; then status_line base-image up "127.0.0.1:$PLAIN_PORT/$BASE_REPO:$BASE_TAG@$digest"; else
    status_line base-image down "127.0.0.1:$PLAIN_PORT/$BASE_REPO:$BASE_TAG"
    bad=1
  fi
  local modern="unix://$MODERN_DOCKER_DIR/docker.sock" version
  version="$(server_version "$modern")"
  if [ -n "$version" ]; then status_line modern-docker up "$modern (Docker $version)"; else
    status_line modern-docker down "$modern"
    bad=1
  fi
  local cstore="unix://$CSTORE_DOCKER_DIR/docker.sock" type
  version="$(server_version "$cstore")"
  type="$(driver_type "$cstore")"
  if [ -n "$version" ] && [ "$type" = "$CSTORE_DRIVER_TYPE" ]; then status_line containerd-store up "$cstore (Docker $version, $type)"; else
    status_line containerd-store down "$cstore${version:+ (Docker $version, driver-type '${type:-none}', want $CSTORE_DRIVER_TYPE)}"
    bad=1
  fi
  version="$(buildx_version)"
  if [ -n "$version" ]; then status_line buildx up "$version"; else
    status_line buildx down "docker buildx version fails"
    bad=1
  fi
  version="$(containerd_version "$EROFS_ROOT/usr/bin/containerd")"
  local mkfs
  mkfs="$(mkfs_erofs_version)"
  if at_least "$version" 2.1 && at_least "$mkfs" 1.8; then status_line erofs-containerd up "$EROFS_ROOT (containerd $version, mkfs.erofs $mkfs; no daemon: tests start their own)"; else
    status_line erofs-containerd down "$EROFS_ROOT (containerd '${version:-absent}', want >= 2.1; mkfs.erofs '${mkfs:-absent}', want >= 1.8)"
    bad=1
  fi
  status_line json "$([ -f "$JSON_FILE" ] && echo ok || echo none)" "$JSON_FILE"
  return "$bad"
}

cmd_down() {
  local flavour
  for flavour in plain basic token; do
    if [ -f "$STATE_DIR/registry-$flavour/pid" ]; then
      log "stopping registry $flavour"
      stop_pidfile "$STATE_DIR/registry-$flavour/pid" "$STATE_DIR/registry-$flavour/config.yml"
    fi
  done
  if [ -f "$STATE_DIR/token-server/pid" ]; then
    log "stopping token server"
    stop_pidfile "$STATE_DIR/token-server/pid" "$STATE_DIR/token-server/config.json"
  fi
  stop_dockerd "$STATE_DIR/dockerd.pid" dockerd
  stop_dockerd "$MODERN_DOCKER_DIR/dockerd.pid" "$MODERN_DOCKER_DIR/data"
  stop_dockerd "$CSTORE_DOCKER_DIR/dockerd.pid" "$CSTORE_DOCKER_DIR/data"
  rm -f "$JSON_FILE"
  log "down (images, registry data, the cached rootfs and the modern runtimes, containerd 2.1's root included, stay in $STATE_DIR)"
}

main() {
  local command="${1:-}"
  case "$command" in
    up | down | status) ;;
    -h | --help | help)
      usage
      exit 0
      ;;
    *)
      usage
      echo "test-services.sh: unknown command '${command}' (want up, down or status)" >&2
      exit 2
      ;;
  esac
  private_dir "$STATE_DIR" || {
    echo "test-services.sh: the state directory is not private (PREBUILT_TEST_SERVICES_DIR)" >&2
    exit 1
  }
  if [ "$command" = status ]; then
    cmd_status
    return
  fi
  # One `up` or `down` at a time (several test runs may start together). fd 9 holds the lock and
  # is closed in every background service so they do not keep it.
  exec 9>"$STATE_DIR/lock"
  if ! flock -w 1200 9; then
    echo "test-services.sh: another up/down still holds $STATE_DIR/lock after 20 minutes" >&2
    exit 1
  fi
  "cmd_$command"
}

# Sourced (tests call single functions), it only defines them.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then main "$@"; fi
