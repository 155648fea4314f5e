#!/usr/bin/env bash
# Packs what one GPU round needs into DIR, for a GPU machine that lacks this machine's
# Debian packages (docs/cuda.md "Running on a GPU"):
#   scripts/gpu-bundle.sh [BUILD] DIR      BUILD defaults to build/
# DIR receives the stripped CUDA test programs (test_cuda_*, and the multi-rank test_nccl),
# the kernel benchmark, the GPT-2
# training benchmark (bench/gpt2_gpu) with its PyTorch twin (tools/torch_gpt2_ref.py), the dsc
# tool, scripts/gpu-check.sh, a small training text (the fortunes corpus), a synthetic token
# shard of GPT-2's vocabulary (2M tokens) and lib.tgz: every
# shared library those programs load that is not glibc's or the CUDA toolkit's (the GPU
# machine brings its own driver and cuBLASLt), and ompi.tgz: OpenMPI 4.1 (mpirun/orterun,
# orted, the MCA plugins, the help files, PMIx with its plugins, and every library they
# load but glibc), relocatable: gpu-check.sh unpacks it and sets OPAL_PREFIX and
# PMIx's plugin path (the GPU machine has no mpirun of its own). Then, on the GPU machine:
#   GPU_BUNDLE=DIR bash DIR/gpu-check.sh LOGDIR
# (GPU_BENCH=1 adds the dsc / PyTorch GPT-2 comparison; GPU_BENCH_ONLY=1 runs only that.)
set -euo pipefail
if [ $# -eq 1 ]; then BUILD=build; OUTDIR=$1; else BUILD=${1:?usage: gpu-bundle.sh [BUILD] DIR}; OUTDIR=${2:?usage: gpu-bundle.sh [BUILD] DIR}; fi
here=$(cd "$(dirname "$0")" && pwd)
progs=("$BUILD"/test_cuda_kernels "$BUILD"/test_cuda_attention "$BUILD"/test_cuda_optim "$BUILD"/test_cuda_engine "$BUILD"/test_cuda_copy_async "$BUILD"/test_nccl "$BUILD"/bench/bench_cuda_kernels "$BUILD"/bench/bench_gemm_gpt "$BUILD"/bench/bench_cuda_rowwise "$BUILD"/bench/bench_attention "$BUILD"/bench/gpt2_gpu "$BUILD"/bench/zero_overhead "$BUILD"/dsc)
for p in "${progs[@]}"; do
  [ -x "$p" ] || { echo "gpu-bundle: $p is missing (build with DSC_CUDA=ON first: cmake --build $BUILD)" >&2; exit 1; }
done
rm -rf "$OUTDIR"
mkdir -p "$OUTDIR/lib"
for p in "${progs[@]}"; do
  cp "$p" "$OUTDIR/"
  strip "$OUTDIR/$(basename "$p")"
done
cp "$here/gpu-check.sh" "$here/gpu-rows.sh" "$here/gpu-bundle-env.sh" "$here/gpu-pending.sh" "$here/gpu-step.sh" "$here/gpu-multi.sh" "$here/gpu-big.sh" "$here/gpu-mpi-env.sh" \
   "$here/../tools/torch_gpt2_ref.py" "$here/../tools/torch_allreduce_bw.py" "$OUTDIR/"
if [ -r /usr/share/games/fortunes/fortunes ]; then cp /usr/share/games/fortunes/fortunes "$OUTDIR/train.txt"; fi
# 2M tokens of GPT-2's vocabulary (a noisy chain, llm.c shard format) for the d12 run
python3 - "$here/../tools" "$OUTDIR/tok_train_000.bin" <<'PY'
import random, sys
sys.path.insert(0, sys.argv[1])
import make_shard
random.seed(1)
toks, prev = [], 1
for _ in range(2_000_000):
    prev = (7 * prev + 3) % 50257 if random.random() < 0.75 else random.randrange(50257)
    toks.append(prev)
make_shard.write_shard(sys.argv[2], toks)
PY
# Every library the programs load, less glibc (the GPU machine's own must be used) and CUDA's.
for p in "${progs[@]}"; do ldd "$p"; done | awk '$3 ~ /^\// {print $3}' | sort -u |
  grep -Ev '/(libc|libm|libdl|librt|libpthread|ld-linux[^/]*)\.so|/libcu(blas|blasLt|da|dart)[^/]*\.so' |
  while read -r lib; do cp -L "$lib" "$OUTDIR/lib/"; done
tar czf "$OUTDIR/lib.tgz" -C "$OUTDIR" lib
rm -rf "$OUTDIR/lib"
# OpenMPI as Debian installs it (prefix /usr), in the same layout under ompi/ so that
# OPAL_PREFIX=<dir>/ompi finds bin/, lib/x86_64-linux-gnu/openmpi/lib/openmpi3 (the plugins)
# and share/openmpi (the help files); PMIx (its own prefix) under ompi/pmix2; the libraries
# of all of it, less glibc, under ompi/deps (about 15 MB, 5 MB compressed).
ompi_lib=/usr/lib/x86_64-linux-gnu/openmpi/lib
pmix_dir=/usr/lib/x86_64-linux-gnu/pmix2
for f in /usr/bin/orterun /usr/bin/orted "$ompi_lib/openmpi3" /usr/share/openmpi "$pmix_dir/lib/pmix"; do
  [ -e "$f" ] || { echo "gpu-bundle: $f is missing (OpenMPI 4.1: bash scripts/deps.sh)" >&2; exit 1; }
done
ompi_stage=$(mktemp -d)
O="$ompi_stage/ompi"
mkdir -p "$O/bin" "$O/lib/x86_64-linux-gnu/openmpi/lib" "$O/share" "$O/pmix2/lib" "$O/deps"
cp /usr/bin/orterun /usr/bin/orted "$O/bin/"
ln -s orterun "$O/bin/mpirun"
ln -s orterun "$O/bin/mpiexec"
cp -a "$ompi_lib/openmpi3" "$O/lib/x86_64-linux-gnu/openmpi/lib/"
cp -a /usr/share/openmpi "$O/share/"
cp -a "$pmix_dir/lib/pmix" "$O/pmix2/lib/"
[ -d "$pmix_dir/share" ] && cp -a "$pmix_dir/share" "$O/pmix2/"
for f in "$O"/bin/orterun "$O"/bin/orted "$O"/lib/x86_64-linux-gnu/openmpi/lib/openmpi3/*.so "$O"/pmix2/lib/pmix/*.so; do
  ldd "$f" 2>/dev/null
done | awk '$3 ~ /^\// {print $3}' | sort -u |
  grep -Ev '/(libc|libm|libdl|librt|libpthread|ld-linux[^/]*)\.so' |
  while read -r lib; do cp -L "$lib" "$O/deps/"; done
tar czf "$OUTDIR/ompi.tgz" -C "$ompi_stage" ompi
rm -rf "$ompi_stage"
# the programs compressed together: each carries the same kernels' fatbins (about 20 MB
# stripped, 10 MB gzipped each); xz with a dictionary larger than one program stores them
# once (11 programs: about 15 MB instead of 100). The GPU machine unpacks it with Python's
# lzma where it has no xz (scripts/gpu-unpack.sh).
names=()
for p in "${progs[@]}"; do names+=("$(basename "$p")"); done
tar cf - -C "$OUTDIR" "${names[@]}" | xz -T2 -6 --lzma2=dict=128MiB >"$OUTDIR/bin.tar.xz"
cp "$here/gpu-unpack.sh" "$OUTDIR/"
(cd "$OUTDIR" && rm -f "${names[@]}")
du -sh "$OUTDIR"
ls -la "$OUTDIR"
