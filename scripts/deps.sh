#!/usr/bin/env bash
# Installs the Debian packages dsc needs to build, test and train.
# Idempotent: prints nothing and does nothing when everything is present.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libjansson-dev          # JSON config parsing (line/column errors)
  libopenblas-dev         # cblas sgemm/dgemm for CPU matmul
  libopenmpi-dev openmpi-bin   # rank launch and CPU collectives
  libomp-dev              # OpenMP for clang builds (gcc ships its own)
  clang libclang-rt-dev   # libFuzzer and sanitizer runtimes for `make fuzz`
  fortunes-min            # the embedded English corpus for `make train`
)
# Only the golden-data generators in tools/ use PyTorch; tests never need it.
if [ "${DSC_WITH_TORCH:-0}" = 1 ]; then packages+=(python3-torch python3-numpy); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps.sh: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
