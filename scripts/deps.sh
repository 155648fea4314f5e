#!/usr/bin/env bash
# Installs the Debian packages dsc needs. Idempotent: prints nothing and does nothing when
# everything is present.
#
#   bash scripts/deps.sh [build|test|ci]
#
# build (the default): what `make build`, `make train` and `make install` need
# test:  + what `make test` needs (the fuzz/sanitizer toolchain, python3 for the interop
#        tests and the shard writer, python3-venv for their virtual environment, and
#        python3-torch, which interop_transformers_gpt2 and the golden-file generators use)
# ci:    + debootstrap, for scripts/fresh-root.sh (.ci/run's fresh-machine check)
# The CMake configure step checks the build packages again and names the missing one
# (cmake/deps.cmake), so a machine set up by hand fails with a message, not a compiler error.
set -euo pipefail

profile=${1:-build}
build=(
  build-essential cmake pkg-config
  libjansson-dev          # JSON config parsing (line/column errors)
  libopenblas-dev         # cblas sgemm/dgemm for CPU matmul
  libopenmpi-dev openmpi-bin   # rank launch and CPU collectives
  libxxhash-dev           # XXH3-64 checkpoint checksums (header-only use)
  liburing-dev            # io_uring for the NVMe optimizer offload (src/zero/aio.c)
  fortunes-min            # the embedded English corpus for `make train`
)
test=(
  clang libclang-rt-dev libomp-dev   # libFuzzer, sanitizer runtimes, OpenMP for clang builds
  python3 python3-venv    # interop tests run in a venv made by `make test` (Makefile)
  python3-numpy python3-torch        # Debian's torch, visible in that venv (--system-site-packages)
)
ci=(debootstrap)
case "$profile" in
  build) packages=("${build[@]}") ;;
  test) packages=("${build[@]}" "${test[@]}") ;;
  ci) packages=("${build[@]}" "${test[@]}" "${ci[@]}") ;;
  *) echo "deps.sh: unknown profile '$profile' (build, test or ci)" >&2; exit 2 ;;
esac

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
