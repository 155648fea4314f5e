#!/usr/bin/env bash
# Issue 17/20's measuring call on a GPU machine, from a bundle (scripts/gpu-bundle.sh DIR):
# the CUDA tests, the attention and row-wise kernel benches, GPT-2 d12 B 64 with each attention
# backward variant, compiled PyTorch's twin, ZeRO-2 with and without the optimizer offloaded,
# the per-call profile, and the table rows (ZeRO 1 and 3, d24, d48 with checkpointing). Logs
# in LOGDIR; docs/performance.md's session 6 rows came from this sequence (about 290 s on an
# H100).
#   GPU_BUNDLE=DIR bash DIR/gpu-step.sh LOGDIR
set -u
L=${1:?usage: GPU_BUNDLE=DIR gpu-step.sh LOGDIR}
D=$(cd "${GPU_BUNDLE:?set GPU_BUNDLE to the bundle}" && pwd)
mkdir -p "$L"
U=$(mktemp -d)
bash "$D/gpu-unpack.sh" "$D/bin.tar.xz" "$U" && tar xzf "$D/lib.tgz" -C "$U"
LIBS=$U/lib:/usr/local/cuda/lib64
r() { # name seconds command...: one program, its log, its exit status and time in summary.txt
  local n=$1 t=$2; shift 2
  local t0; t0=$(date +%s)
  (cd "$U" && env LD_LIBRARY_PATH="$LIBS" OMP_NUM_THREADS=8 OPENBLAS_NUM_THREADS=1 timeout "$t" "$@") >"$L/$n.log" 2>&1
  echo "$n rc=$? $(($(date +%s) - t0)) s" | tee -a "$L/summary.txt"
}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >"$L/device.txt" 2>&1
r test_cuda_kernels 60 ./test_cuda_kernels
r test_cuda_attention 60 ./test_cuda_attention
r test_cuda_engine 200 ./test_cuda_engine
r bench_attention 60 ./bench_attention
r rowwise 60 ./bench_cuda_rowwise
r gpt2_default 60 ./gpt2_gpu --model d12 --batch 64 --steps 6 --device cuda:0
for v in recompute atomic; do r "gpt2_att_$v" 40 env DSC_CUDA_ATTENTION=$v ./gpt2_gpu --model d12 --batch 64 --steps 4 --device cuda:0; done
(cd "$U" && PYTHONUNBUFFERED=1 timeout 150 "${PYTHON:-python3}" "$D/torch_gpt2_ref.py" --model d12 --batch 64 --steps 5) >"$L/torch.log" 2>&1
echo "torch rc=$?" | tee -a "$L/summary.txt"
for o in none cpu; do r "offload_$o" 70 ./gpt2_gpu --model d12 --zero 2 --batch 64 --steps 4 --offload $o --device cuda:0; done
r profile 60 env DSC_CUDA_PROFILE=1 ./gpt2_gpu --model d12 --batch 64 --steps 2 --device cuda:0
r row_z1 60 ./gpt2_gpu --model d12 --batch 64 --zero 1 --steps 3 --device cuda:0
r row_z3 60 ./gpt2_gpu --model d12 --batch 64 --zero 3 --steps 3 --device cuda:0
r row_d24 60 ./gpt2_gpu --model d24 --batch 32 --steps 3 --max-seconds 10 --device cuda:0
r row_d48ckpt 90 ./gpt2_gpu --model d48 --batch 16 --ckpt --steps 3 --max-seconds 10 --device cuda:0
grep -h "RESULT" "$L"/*.log | tee "$L/results.txt"
