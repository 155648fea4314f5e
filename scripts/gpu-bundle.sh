#!/usr/bin/env bash
# Packs what one GPU round needs into DIR, for a GPU machine that lacks this machine's
# Debian packages (docs/cuda.md "Running on a GPU"):
#   scripts/gpu-bundle.sh [BUILD] DIR      BUILD defaults to build/
# DIR receives the stripped CUDA test programs (test_cuda_*), the kernel benchmark, the GPT-2
# training benchmark (bench/gpt2_gpu) with its PyTorch twin (tools/torch_gpt2_ref.py), the dsc
# tool, scripts/gpu-check.sh, a small training text (the fortunes corpus), a synthetic token
# shard of GPT-2's vocabulary (2M tokens) and lib.tgz: every
# shared library those programs load that is not glibc's or the CUDA toolkit's (the GPU
# machine brings its own driver and cuBLASLt). Then, on the GPU machine:
#   GPU_BUNDLE=DIR bash DIR/gpu-check.sh LOGDIR
# (GPU_BENCH=1 adds the dsc / PyTorch GPT-2 comparison; GPU_BENCH_ONLY=1 runs only that.)
set -euo pipefail
if [ $# -eq 1 ]; then BUILD=build; OUTDIR=$1; else BUILD=${1:?usage: gpu-bundle.sh [BUILD] DIR}; OUTDIR=${2:?usage: gpu-bundle.sh [BUILD] DIR}; fi
here=$(cd "$(dirname "$0")" && pwd)
progs=("$BUILD"/test_cuda_kernels "$BUILD"/test_cuda_optim "$BUILD"/test_cuda_engine "$BUILD"/bench/bench_cuda_kernels "$BUILD"/bench/bench_gemm_gpt "$BUILD"/bench/gpt2_gpu "$BUILD"/dsc)
for p in "${progs[@]}"; do
  [ -x "$p" ] || { echo "gpu-bundle: $p is missing (build with DSC_CUDA=ON first: cmake --build $BUILD)" >&2; exit 1; }
done
rm -rf "$OUTDIR"
mkdir -p "$OUTDIR/lib"
for p in "${progs[@]}"; do
  cp "$p" "$OUTDIR/"
  strip "$OUTDIR/$(basename "$p")"
done
cp "$here/gpu-check.sh" "$here/../tools/torch_gpt2_ref.py" "$OUTDIR/"
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
# the programs compressed too: each carries the kernels' fatbins (about 13 MB stripped, 3 MB gzipped)
names=()
for p in "${progs[@]}"; do names+=("$(basename "$p")"); done
tar czf "$OUTDIR/bin.tgz" -C "$OUTDIR" "${names[@]}"
(cd "$OUTDIR" && rm -f "${names[@]}")
du -sh "$OUTDIR"
ls -la "$OUTDIR"
