#!/usr/bin/env bash
# Installs and starts everything prebuilt needs on a fresh machine of this kind (Debian 12, root,
# Node 20): pnpm, the workspace's dependencies and build, then the Docker daemon (no bridge, host
# networking only), the local registries, the debootstrap base image and the modern runtimes (Docker
# Engine 26 beside the 20.10 one, and the buildx plugin, from Debian trixie's packages unpacked into
# the state directory, and containerd 2.1 from Debian forky for the erofs snapshotter tests)
# (scripts/test-services.sh), and erofs-utils >= 1.8 (scripts/build-erofs-utils.sh).
# Idempotent: what is already installed or running is reused.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian packages the fixtures and tests use beside those scripts/test-services.sh installs:
# bzip2/zstd make conda packages, unzip and python3.11 (with pip) check them; python3-venv makes the
# venvs of the newer pips the pip launcher's tests run (scripts/test-pips.sh); boto3, requests and
# kubernetes let the host python3 run real Metaflow (local runs, `create --only-json` against the S3
# fake); patchelf makes the realistic benchmark corpus (bench/, not the tests); stargz-snapshotter
# (ctr-remote), golang-go and the snapshotter's Go library build containerd-stargz-grpc for the oci
# eStargz lazy-pull test (scripts/build-stargz-grpc.sh); pigz gives bench B10 its `unpigz` node setting.
APT_PACKAGES=(bzip2 zstd pigz unzip python3.11 python3-pip python3-venv python3-boto3 python3-requests python3-kubernetes patchelf stargz-snapshotter golang-go golang-github-containerd-stargz-snapshotter-dev)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "[setup] apt-get install ${missing[*]}" >&2
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

PNPM_VERSION=10.34.9
if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version 2>/dev/null)" != "$PNPM_VERSION" ]; then
  echo "[setup] installing pnpm $PNPM_VERSION" >&2
  npm install --global --no-fund --no-audit "pnpm@$PNPM_VERSION" >&2
fi
echo "[setup] installing the workspace's dependencies" >&2
pnpm install --frozen-lockfile >&2
echo "[setup] building" >&2
pnpm build >&2
echo "[setup] containerd-stargz-grpc for the eStargz lazy-pull test (built from Debian's Go library)" >&2
bash scripts/build-stargz-grpc.sh
echo "[setup] erofs-utils >= 1.8 (mkfs.erofs) for containerd 2.1's erofs differ (built from Debian trixie's source)" >&2
bash scripts/build-erofs-utils.sh
echo "[setup] starting the Docker daemon, the registries and the base image" >&2
bash scripts/test-services.sh up >/dev/null
