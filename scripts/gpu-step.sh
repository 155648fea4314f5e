#!/usr/bin/env bash
# Issue 17/20's measuring call on a GPU machine, from a bundle (scripts/gpu-bundle.sh DIR):
# the CUDA tests, the attention and row-wise kernel benches, GPT-2 d12 B 64 with the default
# attention (cuDNN's where it loads) and with dsc's kernels, compiled PyTorch's twin, ZeRO 1-3,
# ZeRO-2 with and without the optimizer offloaded, the per-call profile, the default attention's
# repeatability, two ranks sharing the GPU against one (bench/gpt2_gpu under mpirun, the MPI
# backend on device buffers), and the d24 row (d48's: scripts/gpu-rows.sh). Logs in LOGDIR;
# docs/performance.md's session 7 rows came from this sequence (about 210 s on an H100).
# bench/zero_overhead --device cuda:0 --model d12 --batch 64 --ga 8 counts ZeRO's device work.
#   GPU_BUNDLE=DIR bash DIR/gpu-step.sh LOGDIR
# STEP_QUICK=1: the tests, bench_attention, d12 default/pre/PyTorch, ZeRO 1-3 and offload only
# (about 120 s), for a call that also runs scripts/gpu-big.sh. STEP_MIN=1: test_cuda_attention,
# the d12 step with the default attention and PyTorch's, nothing else (about 80 s).
# cuDNN comes from the machine: PyTorch's wheel (nvidia/cudnn/lib), else the loader's path
# (scripts/gpu-bundle-env.sh).
set -u
L=${1:?usage: GPU_BUNDLE=DIR gpu-step.sh LOGDIR}
D=$(cd "${GPU_BUNDLE:?set GPU_BUNDLE to the bundle}" && pwd)
mkdir -p "$L"
. "$D/gpu-bundle-env.sh" # U, LIBS, CALLER_LD and r (one program, its log, its status)
. "$D/gpu-mpi-env.sh"
q() { [ -z "${STEP_QUICK:-}${STEP_MIN:-}" ]; } # the rows a quick call leaves out
m() { [ -z "${STEP_MIN:-}" ]; }                 # the rows a minimal call leaves out
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; echo "cuDNN path: ${NV:-none}"; } >"$L/device.txt" 2>&1
m && r test_cuda_kernels 60 ./test_cuda_kernels
r test_cuda_attention 60 ./test_cuda_attention
m && r test_cuda_engine 240 ./test_cuda_engine
m && r test_cuda_copy_async 60 ./test_cuda_copy_async
m && r bench_attention 60 ./bench_attention
q && r rowwise 60 ./bench_cuda_rowwise
r gpt2_default 60 ./gpt2_gpu --model d12 --batch 64 --steps 6 --device cuda:0
m && r gpt2_att_pre 40 env DSC_CUDA_ATTENTION=pre ./gpt2_gpu --model d12 --batch 64 --steps 4 --device cuda:0
(cd "$U" && LD_LIBRARY_PATH="$CALLER_LD" PYTHONUNBUFFERED=1 timeout 150 "${PYTHON:-python3}" "$D/torch_gpt2_ref.py" --model d12 --batch 64 --steps 5) >"$L/torch.log" 2>&1
echo "torch rc=$?" | tee -a "$L/summary.txt"
m && for z in 1 2 3; do r "row_z$z" 60 ./gpt2_gpu --model d12 --batch 64 --zero $z --steps 4 --device cuda:0; done
m && r offload_cpu 70 ./gpt2_gpu --model d12 --zero 2 --batch 64 --steps 4 --offload cpu --device cuda:0
q && r profile 60 env DSC_CUDA_PROFILE=1 ./gpt2_gpu --model d12 --batch 64 --steps 2 --device cuda:0
q && r ranks_ref 60 ./gpt2_gpu --model d12 --batch 8 --tokens-per-step 65536 --steps 20 --device cuda --save-params "$U/ref.bin"
# the default attention's repeatability: the same run again, its parameters against the first's
q && r repeat_default 60 ./gpt2_gpu --model d12 --batch 8 --tokens-per-step 65536 --steps 20 --device cuda --compare-params "$U/ref.bin"
q && r ranks_np2 90 "$MPIRUN" -np 2 --bind-to none ./gpt2_gpu --model d12 --batch 8 --tokens-per-step 65536 --steps 20 --zero 2 \
  --device cuda --compare-params "$U/ref.bin"
q && r row_d24 60 ./gpt2_gpu --model d24 --batch 32 --steps 3 --max-seconds 10 --device cuda:0
grep -h "RESULT" "$L"/*.log | tee "$L/results.txt"
