#!/usr/bin/env bash
# The one script the GPU machine runs: the CUDA kernel tests (label `cuda`) and the kernel
# microbenchmark, logs into LOGDIR.
#
#   scripts/gpu-check.sh LOGDIR            from a build tree (build/, or $DSC_BUILD): runs
#                                          `ctest -L cuda` there, then bench/bench_cuda_kernels
#   GPU_BUNDLE=DIR scripts/gpu-check.sh LOGDIR
#                                          from carried binaries: DIR holds test_cuda_*,
#                                          bench_cuda_kernels and lib/ (the shared libraries the
#                                          GPU machine lacks: OpenBLAS, gfortran, ...; or
#                                          lib.tgz holding lib/); the
#                                          tests run through a generated ctest file.
# Environment: SANITIZE_SECONDS (default 0 = off) runs compute-sanitizer memcheck over the
# tests for at most that long; BENCH_ARGS passes e.g. --quick to the benchmark.
# GPU_NCCL_ONLY=1 runs only the multi-rank tests (ctest -R '^nccl_' and the abort cases).
# GPU_BENCH=1 adds issue 17's side-by-side GPT-2 run (gpu_bench below: bench/gpt2_gpu at d12
# with the largest B of 64/32/16/8 that fits, tools/torch_gpt2_ref.py at B 64, the tok/s
# ratio); GPU_BENCH_ONLY=1 runs only that. BENCH_STEPS (default 8), BENCH_SECONDS (each program
# stops after the step that passes it, once 2 steps ran; default 240), BENCH_TIMEOUT (hang
# guard per program, default 600), PYTHON (default python3: the one with torch 2.x) tune it.
# Several ranks (issue 18): the multi-rank tests (test_nccl comm|zero: the MPI
# backend on device buffers with 2 and 3 ranks sharing cuda:0, NCCL at world size 1, NCCL on
# one GPU per rank where there are enough GPUs, and a killed rank) run under mpirun: the
# bundle's OpenMPI (ompi.tgz, relocated with OPAL_PREFIX), else the machine's. NCCL comes from
# DSC_NCCL_LIBRARY, else PyTorch's wheel (nvidia.nccl), else the loader's search path.
# Exit status: nonzero when a test failed (a skipped test, exit 77, counts as failed here:
# this script is for machines with a GPU).
set -u
# PyTorch (gpu_bench) runs with the caller's library path: the bundle's lib/ (Debian's
# libstdc++, libz, libgomp, ...) is for dsc's programs only.
CALLER_LD_LIBRARY_PATH=${LD_LIBRARY_PATH-}
LOGDIR=${1:?usage: gpu-check.sh LOGDIR}
mkdir -p "$LOGDIR"
here=$(cd "$(dirname "$0")" && pwd)
status=0

{
  echo "== $(date -u +%FT%TZ) gpu-check on $(hostname)"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 || true
  nvcc --version 2>/dev/null | tail -2 || true
} | tee "$LOGDIR/device.txt"

# cuBLASLt comes from the machine (it is 500 MB): the toolkit's, or a wheel's (PyTorch's).
cublas_dir=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -e "$d/libcublasLt.so.13" ] && { cublas_dir=$d; break; }
done
[ -n "$cublas_dir" ] || cublas_dir=$(dirname "$(find /usr /opt -name 'libcublasLt.so.13*' 2>/dev/null | head -1)" 2>/dev/null)
if [ -n "$cublas_dir" ]; then
  export LD_LIBRARY_PATH="$cublas_dir:${LD_LIBRARY_PATH:-}"
  echo "cuBLASLt from $cublas_dir" | tee -a "$LOGDIR/device.txt"
fi

run_one() { # name command...: runs, logs, records the exit status
  local name=$1; shift
  local t0=$(date +%s%N)
  "$@" >"$LOGDIR/$name.log" 2>&1
  local rc=$?
  local t1=$(date +%s%N)
  printf '%-28s rc=%d  %d ms\n' "$name" "$rc" $(( (t1 - t0) / 1000000 )) | tee -a "$LOGDIR/summary.txt"
  [ $rc -eq 0 ] || status=1
  return $rc
}

# Issue 17's measuring pair: dsc's GPT-2 d12 step (bench/gpt2_gpu, B 64, or the largest of
# 32/16/8 that fits: it exits 3 when out of memory) beside compiled PyTorch at B 64
# (tools/torch_gpt2_ref.py), both at T 1024 and 524,288 tokens per optimizer step, one after
# the other on the same GPU; the rows go to gpt2_bench.md and the summary, with the ratio.
gpu_bench() {
  local gb tref py=${PYTHON:-python3} steps=${BENCH_STEPS:-8} tmo=${BENCH_TIMEOUT:-600} dsc_log="" bs rc t0 t1
  local limit="--max-seconds ${BENCH_SECONDS:-240}"
  if [ -n "${GPU_BUNDLE:-}" ]; then gb="$B/gpt2_gpu"; tref="$B/torch_gpt2_ref.py"
  else gb="$BUILD/bench/gpt2_gpu"; tref="$here/../tools/torch_gpt2_ref.py"; fi
  for bs in 64 32 16 8; do
    t0=$(date +%s%N)
    timeout "$tmo" "$gb" --model d12 --batch "$bs" --steps "$steps" $limit --device cuda:0 >"$LOGDIR/gpt2_gpu_d12_b$bs.log" 2>&1
    rc=$?
    t1=$(date +%s%N)
    printf '%-28s rc=%d  %d ms\n' "gpt2_gpu_d12_b$bs" "$rc" $(( (t1 - t0) / 1000000 )) | tee -a "$LOGDIR/summary.txt"
    if [ $rc -eq 0 ]; then dsc_log="$LOGDIR/gpt2_gpu_d12_b$bs.log"; break; fi
    if [ $rc -ne 3 ]; then status=1; tail -5 "$LOGDIR/gpt2_gpu_d12_b$bs.log" | tee -a "$LOGDIR/summary.txt"; break; fi
    echo "gpt2_gpu: out of memory at B $bs$([ "$bs" -gt 8 ] && echo ', trying a smaller batch')" | tee -a "$LOGDIR/summary.txt"
  done
  run_one torch_gpt2_ref_d12_b64 env LD_LIBRARY_PATH="$CALLER_LD_LIBRARY_PATH" \
    timeout "$tmo" "$py" "$tref" --model d12 --batch 64 --steps "$steps" $limit
  [ $? -eq 0 ] || tail -5 "$LOGDIR/torch_gpt2_ref_d12_b64.log" | tee -a "$LOGDIR/summary.txt"
  local d t
  d=$([ -n "$dsc_log" ] && sed -n 's/^RESULT system=dsc .* tok_s=\([0-9.]*\).*/\1/p' "$dsc_log")
  t=$(sed -n 's/^RESULT system=torch .* tok_s=\([0-9.]*\).*/\1/p' "$LOGDIR/torch_gpt2_ref_d12_b64.log")
  {
    echo "GPT-2 d12, T 1024, 524,288 tokens/step, $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1), $(date -u +%F)"
    grep -h -m1 '^| system' ${dsc_log:+"$dsc_log"} "$LOGDIR/torch_gpt2_ref_d12_b64.log" | head -1
    grep -h -m1 '^| ---' ${dsc_log:+"$dsc_log"} "$LOGDIR/torch_gpt2_ref_d12_b64.log" | head -1
    grep -h '^| dsc \|^| torch ' ${dsc_log:+"$dsc_log"} "$LOGDIR/torch_gpt2_ref_d12_b64.log"
    if [ -n "$d" ] && [ -n "$t" ]; then
      awk -v d="$d" -v t="$t" 'BEGIN { printf "tok/s dsc / PyTorch = %.0f / %.0f = %.3f\n", d, t, d / t }'
    else
      echo "tok/s dsc / PyTorch: not available (dsc: ${d:-no result}, PyTorch: ${t:-no result})"
    fi
  } | tee "$LOGDIR/gpt2_bench.md" | tee -a "$LOGDIR/summary.txt"
}

# OpenMPI and NCCL for the multi-rank tests (MPIRUN, DSC_NCCL_LIBRARY): gpu-mpi-env.sh
. "$here/gpu-mpi-env.sh"
echo "mpirun: ${MPIRUN:-none} ($([ -n "$MPIRUN" ] && "$MPIRUN" --version 2>&1 | head -1))" | tee -a "$LOGDIR/device.txt"
echo "NCCL: ${DSC_NCCL_LIBRARY:-libnccl.so.2 on the loader path} (NCCL_NVLS_ENABLE=0 is set by dsc)" | tee -a "$LOGDIR/device.txt"

if [ -n "${GPU_BUNDLE:-}" ]; then
  B=$(cd "$GPU_BUNDLE" && pwd)
  if [ -f "$B/bin.tar.xz" ]; then # the programs travel compressed (each holds the kernels' fatbins)
    unpacked=$(mktemp -d)
    bash "$B/gpu-unpack.sh" "$B/bin.tar.xz" "$unpacked"
    for f in "$B"/*; do [ -e "$unpacked/$(basename "$f")" ] || ln -s "$f" "$unpacked/"; done
    B=$unpacked
  fi
  libdir="$B/lib"
  if [ ! -d "$libdir" ] && [ -f "$B/lib.tgz" ]; then # the libraries travel compressed
    libdir=$(mktemp -d)/lib
    tar xzf "$B/lib.tgz" -C "$(dirname "$libdir")"
  fi
  export LD_LIBRARY_PATH="$libdir:${LD_LIBRARY_PATH:-}"
  for t in "$B"/test_cuda_*; do ldd "$t"; done >"$LOGDIR/ldd.txt" 2>&1
  grep -q "not found" "$LOGDIR/ldd.txt" && { echo "missing libraries:"; grep "not found" "$LOGDIR/ldd.txt"; } | tee -a "$LOGDIR/summary.txt"
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8} OPENBLAS_NUM_THREADS=1
  # a ctest file for the carried tests (the same properties cmake/cuda.cmake declares)
  CT=$(mktemp -d)
  for t in "$B"/test_cuda_*; do
    n=$(basename "$t")
    echo "add_test($n \"$t\")"
    echo "set_tests_properties($n PROPERTIES LABELS \"cuda\" SKIP_RETURN_CODE 77 TIMEOUT 600 WORKING_DIRECTORY \"$B\")"
  done >"$CT/CTestTestfile.cmake"
  # the multi-rank tests as tests/cmake/nccl.cmake declares them (label cuda, 77 = skipped)
  if [ -x "$B/test_nccl" ] && [ -n "$MPIRUN" ]; then
    { for k in comm zero; do
      echo "add_test(nccl_${k}_ws1 \"$B/test_nccl\" $k)"
      echo "set_tests_properties(nccl_${k}_ws1 PROPERTIES LABELS \"cuda\" SKIP_RETURN_CODE 77 TIMEOUT 900 WORKING_DIRECTORY \"$B\" ENVIRONMENT \"DSC_COMM=nccl\")"
      for np in 2 3; do
        for be in mpi nccl; do
          echo "add_test(nccl_${k}_${be}_np$np \"$MPIRUN\" -np $np --oversubscribe \"$B/test_nccl\" $k)"
          echo "set_tests_properties(nccl_${k}_${be}_np$np PROPERTIES LABELS \"cuda\" SKIP_RETURN_CODE 77 TIMEOUT 900 WORKING_DIRECTORY \"$B\" ENVIRONMENT \"DSC_COMM=$be\")"
        done
      done
    done
    for be in mpi nccl; do
      echo "add_test(nccl_comm_debug_${be}_np2 \"$MPIRUN\" -np 2 --oversubscribe \"$B/test_nccl\" comm)"
      echo "set_tests_properties(nccl_comm_debug_${be}_np2 PROPERTIES LABELS \"cuda\" SKIP_RETURN_CODE 77 TIMEOUT 900 WORKING_DIRECTORY \"$B\" ENVIRONMENT \"DSC_COMM=$be;DSC_COMM_DEBUG=1\")"
    done
    echo "add_test(nccl_bf16_np2 \"$MPIRUN\" -np 2 --oversubscribe \"$B/test_nccl\" bf16)"
    echo "set_tests_properties(nccl_bf16_np2 PROPERTIES LABELS \"cuda\" SKIP_RETURN_CODE 77 TIMEOUT 900 WORKING_DIRECTORY \"$B\" ENVIRONMENT \"DSC_COMM=nccl\")"
    } >>"$CT/CTestTestfile.cmake"
  fi
  TESTS=("$B"/test_cuda_*)
  BENCH="$B/bench_cuda_kernels"
else
  BUILD=${DSC_BUILD:-$here/../build}
  CT="$BUILD"
  TESTS=("$BUILD"/test_cuda_*)
  BENCH="$BUILD/bench/bench_cuda_kernels"
fi
if [ "${GPU_BENCH_ONLY:-0}" = 1 ]; then
  gpu_bench
  echo "== summary"; cat "$LOGDIR/summary.txt"
  exit $status
fi
# GPU_NCCL_ONLY=1: only the multi-rank tests (a few minutes), then the abort cases below.
ctest_filter=(-L cuda)
[ "${GPU_NCCL_ONLY:-0}" = 1 ] && ctest_filter=(-L cuda -R '^nccl_')
run_one ctest ctest --test-dir "$CT" "${ctest_filter[@]}" -V
grep -E "tests passed|tests failed|Passed|Failed|Not Run|Skipped" "$LOGDIR/ctest.log" | tail -8 | tee -a "$LOGDIR/summary.txt"
grep -E "Test +#[0-9]+: nccl_" "$LOGDIR/ctest.log" | tee -a "$LOGDIR/summary.txt"

# Jobs that must abort (the build tree's ctest has them as nccl_killed_rank_* and
# nccl_timeout_*; here for the bundle): a rank killed (SIGKILL) during a 3-rank run, where
# mpirun must name it (2 ranks on NCCL: one GPU each on a 2-GPU machine); a rank of 2 that never joins collective #3, which the other must report
# with the collective, its size and the missing rank within the 3 s timeout (NCCL: one GPU
# per rank, so skipped on a 1-GPU machine). Each must end non-zero within 100 s.
abort_case() { # name backend ranks mode regex
  local name=$1 be=$2 np=$3 mode=$4 re=$5 log="$LOGDIR/$1.log" t0 t1 rc
  DSC_COMM=$be "$MPIRUN" -np "$np" --oversubscribe "$B/test_nccl" probe >"$log" 2>&1
  rc=$?
  if [ $rc -eq 77 ]; then echo "$name: skipped ($(grep -m1 skipped "$log"))" | tee -a "$LOGDIR/summary.txt"; return; fi
  t0=$(date +%s)
  DSC_COMM=$be timeout 120 "$MPIRUN" -np "$np" --oversubscribe "$B/test_nccl" "$mode" >>"$log" 2>&1
  rc=$?
  t1=$(date +%s)
  if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $((t1 - t0)) -le 100 ] && ! grep -q UNEXPECTED "$log" && grep -Eq "$re" "$log"; then
    echo "$name: ok (job exit $rc after $((t1 - t0)) s): $(grep -Eo "$re" "$log" | head -1)" | tee -a "$LOGDIR/summary.txt"
  else
    echo "$name: FAIL (exit $rc after $((t1 - t0)) s; see $log)" | tee -a "$LOGDIR/summary.txt"
    status=1
  fi
}
if [ -n "${GPU_BUNDLE:-}" ] && [ -x "$B/test_nccl" ] && [ -n "$MPIRUN" ]; then
  for be in mpi nccl; do
    abort_case "nccl_killed_rank_$be" $be "$([ $be = mpi ] && echo 3 || echo 2)" kill 'Process name: \[\[[0-9]+,1\],1\]|rank 1 with PID [0-9]+ on node .* exited on signal 9'
  done
  # MPI: the blocking all-reduce's wait times out. NCCL: the wait only orders; the host read
  # of #3's result blocks until the watchdog aborts NCCL, and the read's check reports it.
  abort_case nccl_timeout_mpi mpi 2 timeout 'collective #3 allreduce\(1024 f32 sum\) at "train step 3" timed out after [0-9.]+ s on rank 0 of 2; ranks that never arrived: rank 1 \([^)]*\)'
  abort_case nccl_timeout_nccl nccl 2 timeout 'collective #3 allreduce\(1024 f32 sum\) at "train step 3" timed out after [0-9.]+ s on rank 0 of 2 \(found by the communicator.s watchdog: not finished on the GPU by its deadline; the host.s wait had ordered later device work after it and gone on; NCCL.s communicator was aborted; noticed by a host read of device memory\); ranks that never arrived: rank 1 \([^)]*\)'
  # NCCL: after #3's ordered wait the host frees device memory (cudaFree waits for the whole
  # device); the free's check must report #3 rather than the host blocking inside cudaFree.
  abort_case nccl_timeout_free_nccl nccl 2 timeout_free 'collective #3 allreduce\(1024 f32 sum\) at "train step 3" timed out after [0-9.]+ s on rank 0 of 2 \(found by the communicator.s watchdog: not finished on the GPU by its deadline; the host.s wait had ordered later device work after it and gone on; NCCL.s communicator was aborted; noticed by a free of device memory, which waits for the whole device\); ranks that never arrived: rank 1 \([^)]*\)'
fi
sed -n 's/^[0-9]*: //p' "$LOGDIR/ctest.log" | grep -E "max relative difference|relative L2 vs 1 rank|^test_nccl_(comm|zero)( bf16)?: skipped" | sort -u |
  head -60 | tee -a "$LOGDIR/summary.txt"

if [ "${GPU_NCCL_ONLY:-0}" = 1 ]; then
  echo "== summary"; cat "$LOGDIR/summary.txt"
  exit $status
fi

# Summaries of the per-kernel lines (the tolerance table) and failures.
grep -E ": FAIL |FAIL " "$LOGDIR/ctest.log" | head -60 | tee -a "$LOGDIR/summary.txt"
grep -E "checks, " "$LOGDIR/ctest.log" | tee -a "$LOGDIR/summary.txt"

run_one bench_cuda_kernels "$BENCH" ${BENCH_ARGS:-}
cat "$LOGDIR/bench_cuda_kernels.log"
# the flash attention's variants side by side (bench_attention: B 8 and 64)
if [ -x "$(dirname "$BENCH")/bench_attention" ]; then
  run_one bench_attention "$(dirname "$BENCH")/bench_attention" ${BENCH_ARGS:-}
  cat "$LOGDIR/bench_attention.log"
fi

# The tool on the GPU: what doctor sees, then `dsc train --device cuda` on a small corpus
# with nvidia-smi sampling the device memory (the plan dsc prints is compared with it).
if [ -n "${GPU_BUNDLE:-}" ]; then DSC="$B/dsc"; TEXT="$B/train.txt"; else DSC="$BUILD/dsc"; TEXT=/usr/share/games/fortunes/fortunes; fi
if [ -x "$DSC" ]; then
  "$DSC" doctor >"$LOGDIR/doctor.log" 2>&1
  echo "doctor rc=$? (1 = problems listed)" | tee -a "$LOGDIR/summary.txt"
  smi_pid=""
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 >"$LOGDIR/train_cuda_mem_mib.txt" 2>&1 &
    smi_pid=$!
  fi
  run_one train_cuda "$DSC" train --device cuda --data "$TEXT" --steps ${TRAIN_STEPS:-300} --eval-every 100
  [ -n "$smi_pid" ] && kill "$smi_pid" 2>/dev/null
  grep -E "memory|peak|step +(10|100|200|300)/|val loss" "$LOGDIR/train_cuda.log" | tee -a "$LOGDIR/summary.txt"
  # GPT-2 124M's shape (d12, vocab 50257, context 1024) in bf16, micro batch 4: the memory plan
  # at scale and tokens/s, on GPT-2-vocabulary token shards (gpu-bundle.sh makes a synthetic one)
  SHARD=""
  if [ -n "${GPU_BUNDLE:-}" ] && [ -e "$B/tok_train_000.bin" ]; then SHARD="$B/tok_train_000.bin"; fi
  if [ -n "$SHARD" ]; then
    printf '%s\n' '{"train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 1, "bf16": {"enabled": true},' \
      '"gradient_clipping": 1.0, "optimizer": {"type": "AdamW", "params": {"lr": 0.0006, "weight_decay": 0.1}}}' \
      >"$LOGDIR/d12_bf16.json"
    run_one train_cuda_d12 "$DSC" train --device cuda --data "$SHARD" --model d12 --context 1024 \
      --config "$LOGDIR/d12_bf16.json" --steps ${D12_STEPS:-30} --eval-every 0
    grep -E "memory|peak|step +(10|20|30)/" "$LOGDIR/train_cuda_d12.log" | tee -a "$LOGDIR/summary.txt"
  fi
  [ -s "$LOGDIR/train_cuda_mem_mib.txt" ] &&
    echo "nvidia-smi device memory used during train: max $(sort -n "$LOGDIR/train_cuda_mem_mib.txt" | tail -1) MiB (CUDA context included)" |
    tee -a "$LOGDIR/summary.txt"
fi

[ "${GPU_BENCH:-0}" = 1 ] && gpu_bench

if [ "${SANITIZE_SECONDS:-0}" -gt 0 ] && command -v compute-sanitizer >/dev/null; then
  for t in "${TESTS[@]}"; do
    timeout "$SANITIZE_SECONDS" compute-sanitizer --tool memcheck --error-exitcode 9 "$t" \
      >"$LOGDIR/memcheck_$(basename "$t").log" 2>&1
    echo "memcheck $(basename "$t"): rc=$? (124 = time limit), $(grep -c 'Invalid\|ERROR SUMMARY: [1-9]' "$LOGDIR/memcheck_$(basename "$t").log") error lines" | tee -a "$LOGDIR/summary.txt"
  done
fi
echo "== summary"; cat "$LOGDIR/summary.txt"
exit $status
