#!/usr/bin/env bash
# Unpacks a bundle's bin.tar.xz (scripts/gpu-bundle.sh) into DIR: with xz where the GPU
# machine has it, else with Python's lzma module (PyTorch's Python is always there).
#   gpu-unpack.sh ARCHIVE DIR
set -eu
archive=${1:?usage: gpu-unpack.sh ARCHIVE DIR}
dir=${2:?usage: gpu-unpack.sh ARCHIVE DIR}
mkdir -p "$dir"
if command -v xz >/dev/null 2>&1; then
  tar xJf "$archive" -C "$dir"
else
  python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$archive" "$dir"
fi
