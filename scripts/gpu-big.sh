#!/usr/bin/env bash
# Issue 20's "largest GPT on one H100 with its host": ZeRO-2, the optimizer offloaded to the
# CPU (offload_optimizer.device "cpu"), bf16, from a bundle (scripts/gpu-bundle.sh DIR).
# Each run prints its memory plan first and refuses (exit 3) when it cannot fit the device's
# free memory or the host's MemAvailable, so a refusal costs seconds, not a failed cudaMalloc.
#   GPU_BUNDLE=DIR bash DIR/gpu-big.sh LOGDIR
# Runs, each under `timeout`, at most about 275 s in all (10 + 190 + 70, or 10 + 40 + 150 + 70):
#   big       44 x 4096, 64 heads (gpt-6.7b's width, 44 layers: 9.07B parameters; plan: device
#             68.4 GiB, host 101.8 GiB of which 34.2 pinned), B 4 x GA 24 = 98,304 tokens per
#             step, 3 optimizer steps (the first, with the allocations, not timed)
#   big_6.7b  only when big was refused by its plan or failed within 40 s: gpt-6.7b (32 x 4096,
#             6.65B; device 50.4 GiB, host 74.7 GiB), the same batch
#   fallback  gpt-2.7b (32 x 2560, 40 heads: 2.65B), B 8 x GA 12 = 98,304 tokens, 3 steps
# MFU grows with the tokens per step (the CPU step and the copies are per step): set
# BIG_ARGS="--batch 4 --ga 64" for a longer, more efficient step when there is time.
# BIG_TIMEOUT (default 190 s) bounds the big run; BIG_NO_FALLBACK=1 leaves out the fallback.
# Environment: BIG_MODEL, BIG_ARGS, MID_MODEL, FALLBACK_MODEL, FALLBACK_ARGS override the shapes,
# GPU_BIG_OMP the CPU step's threads (default: every core the machine has), GPU_BIG_DEVICE the device
# (default cuda:0; guarded or cpu prove the script here with tiny shapes). The RESULT lines
# (ms/step, tok/s, MFU, peak device MiB, host MiB, init seconds, the offloaded step's seconds
# and, of those, its host waits for the copies: opt_wait_s)
# go to LOGDIR/results.txt.
set -u
L=${1:?usage: GPU_BUNDLE=DIR gpu-big.sh LOGDIR}
D=$(cd "${GPU_BUNDLE:?set GPU_BUNDLE to the bundle}" && pwd)
mkdir -p "$L"
R_OMP=${GPU_BIG_OMP:-$(nproc)} # the CPU step's threads
. "$D/gpu-bundle-env.sh" # U, LIBS (cuDNN from PyTorch's wheel), r (one program, its log, its status)
{ nvidia-smi --query-gpu=name,driver_version,memory.total,memory.free --format=csv,noheader; nproc
  grep -E 'MemTotal|MemAvailable' /proc/meminfo; } >"$L/device.txt" 2>&1
cat "$L/device.txt"
BIG_MODEL=${BIG_MODEL:-"gpt-6.7b --layers 44"}
BIG_ARGS=${BIG_ARGS:-"--batch 4 --ga 24"}
MID_MODEL=${MID_MODEL:-gpt-6.7b}
FALLBACK_MODEL=${FALLBACK_MODEL:-gpt-2.7b}
FALLBACK_ARGS=${FALLBACK_ARGS:-"--batch 8 --ga 12"}
common="--zero 2 --offload cpu --steps 3 --device ${GPU_BIG_DEVICE:-cuda:0}"
# shellcheck disable=SC2086
r plan_big 10 ./gpt2_gpu --model $BIG_MODEL $BIG_ARGS $common --plan-only
t_big=$(date +%s)
# shellcheck disable=SC2086
r big "${BIG_TIMEOUT:-190}" ./gpt2_gpu --model $BIG_MODEL $BIG_ARGS $common --max-seconds 60
rc=$?
if [ $rc -ne 0 ] && [ $(($(date +%s) - t_big)) -lt 40 ]; then # refused by its plan or failed early
  # shellcheck disable=SC2086
  r big_6.7b 150 ./gpt2_gpu --model $MID_MODEL $BIG_ARGS $common --max-seconds 90
fi
# shellcheck disable=SC2086
[ -n "${BIG_NO_FALLBACK:-}" ] || r fallback 70 ./gpt2_gpu --model $FALLBACK_MODEL $FALLBACK_ARGS $common --max-seconds 40
grep -h "memory plan\|available:\|started in\|offloaded optimizer step" "$L"/*.log | cut -c1-400
grep -h "RESULT" "$L"/*.log | tee "$L/results.txt"
