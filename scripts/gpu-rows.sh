#!/usr/bin/env bash
# Issue 17's table rows on the GPU machine, one program run per row (bench/gpt2_gpu, 524,288
# tokens per optimizer step, T 1024, bf16, AdamW), each row printed as docs/performance.md's
# table prints it; a row that does not fit prints what its memory plan needs.
#
#   GPU_BUNDLE=DIR bash DIR/gpu-rows.sh LOGDIR [ROW ...]
# ROW: d12z0 d12z1 d12z2 d12z3 d12ckpt d24 d48ckpt d48 (default: all). ROW_STEPS (default 3),
# ROW_SECONDS (each run stops after the step that passes it, once 2 steps ran; default 60).
# The programs come from the bundle (bin.tar.xz, lib.tgz: scripts/gpu-bundle.sh) or $DSC_BUILD.
set -u
LOGDIR=${1:?usage: gpu-rows.sh LOGDIR [ROW ...]}
shift
mkdir -p "$LOGDIR"
rows=("$@")
[ ${#rows[@]} -gt 0 ] || rows=(d12z0 d12z1 d12z2 d12z3 d12ckpt d24 d48ckpt d48)
if [ -n "${GPU_BUNDLE:-}" ]; then
  D=$(cd "$GPU_BUNDLE" && pwd)
  L=$LOGDIR
  . "$D/gpu-bundle-env.sh" # U and LIBS: cuDNN (the default attention) from PyTorch's wheel
  export LD_LIBRARY_PATH="$LIBS:${LD_LIBRARY_PATH:-}"
  GB="$U/gpt2_gpu"
else
  GB="${DSC_BUILD:-build}/bench/gpt2_gpu"
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8} OPENBLAS_NUM_THREADS=1
steps=${ROW_STEPS:-3}
secs=${ROW_SECONDS:-60}
echo "rows on $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1), $(date -u +%F)" | tee "$LOGDIR/rows.md"
for r in "${rows[@]}"; do
  case $r in
    d12z[0-3]) args="--model d12 --batch 64 --zero ${r#d12z}" ;;
    d12ckpt) args="--model d12 --batch 64 --ckpt" ;;
    d24) args="--model d24 --batch 32" ;;
    d48ckpt) args="--model d48 --batch 16 --ckpt" ;;
    d48) args="--model d48 --batch 16" ;;
    *) echo "gpu-rows: unknown row $r" | tee -a "$LOGDIR/rows.md"; continue ;;
  esac
  t0=$(date +%s)
  # shellcheck disable=SC2086
  timeout 900 "$GB" $args --steps "$steps" --max-seconds "$secs" --device cuda:0 >"$LOGDIR/row_$r.log" 2>&1
  rc=$?
  echo "row $r ($args): rc=$rc, $(( $(date +%s) - t0 )) s" >>"$LOGDIR/rows.md"
  if [ $rc -eq 0 ]; then
    grep -h '^| dsc' "$LOGDIR/row_$r.log" | tee -a "$LOGDIR/rows.md"
  else
    grep -h -i "memory\|plan\|error" "$LOGDIR/row_$r.log" | tail -3 | sed "s/^/  $r: /" | tee -a "$LOGDIR/rows.md"
  fi
done
