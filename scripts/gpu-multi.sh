#!/usr/bin/env bash
# Issue 19's runs on a machine with several GPUs, from a bundle (scripts/gpu-bundle.sh): GPT-2
# d12 (124M) and d48 (1.5B), 524,288 tokens per optimizer step, bf16, AdamW, ZeRO stages 0-3 on
# 1, 2, 4 and 8 GPUs (as many as the machine has), one rank per GPU through NCCL
# (bench/gpt2_gpu under mpirun); the equivalence of N GPUs with one (20 steps, parameters
# within docs/zero.md's bf16 tolerance); NCCL's all-reduce bus bandwidth through PyTorch
# (tools/torch_allreduce_bw.py) as the communication ceiling. NVLink multicast stays off.
# Each row prints tok/s, the scaling efficiency against 1 GPU and the largest per-GPU peak
# beside the memory plan (the ZeRO formulas of docs/zero.md, as `dsc estimate` gives them).
#
#   GPU_BUNDLE=DIR bash DIR/gpu-multi.sh LOGDIR [PART ...]
# PART: bw d12 equiv d48 nccl (default: all, about 8 minutes on 8 H100s by the single-GPU
# times: split it over two calls, e.g. "bw d12 equiv nccl" then "d48"; nccl is gpu-check.sh's
# NCCL tests, whose 2-rank NCCL cases need 2 GPUs). MULTI_GPUS="1 2 4 8" overrides
# the GPU counts. DeepSpeed is not run: the machine has no wheel of it (no registry).
set -u
L=${1:?usage: GPU_BUNDLE=DIR gpu-multi.sh LOGDIR [PART ...]}
shift
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(bw d12 equiv d48 nccl)
mkdir -p "$L"
D=$(cd "${GPU_BUNDLE:?set GPU_BUNDLE to the bundle}" && pwd)
U=$(mktemp -d)
bash "$D/gpu-unpack.sh" "$D/bin.tar.xz" "$U" && tar xzf "$D/lib.tgz" -C "$U"
. "$D/gpu-mpi-env.sh"
export LD_LIBRARY_PATH="$U/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}" OMP_NUM_THREADS=4 OPENBLAS_NUM_THREADS=1
G=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)
counts=${MULTI_GPUS:-}
if [ -z "$counts" ]; then for n in 1 2 4 8; do [ "$n" -le "$G" ] && counts="$counts $n"; done; fi
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | sort | uniq -c; echo "GPUs: $G; runs on:$counts";
  echo "mpirun: ${MPIRUN:-none}; NCCL: ${DSC_NCCL_LIBRARY:-loader path}"; } | tee "$L/device.txt"
[ -n "$MPIRUN" ] || { echo "gpu-multi: no mpirun (neither the bundle's ompi.tgz nor the machine's)"; exit 1; }

# one run: name, seconds, ranks, gpt2_gpu arguments; its RESULT line goes to results.txt
run() {
  local name=$1 t=$2 n=$3; shift 3
  local t0; t0=$(date +%s)
  (cd "$U" && timeout "$t" "$MPIRUN" -np "$n" --bind-to none ./gpt2_gpu --device cuda "$@") >"$L/$name.log" 2>&1
  echo "$name rc=$? $(($(date +%s) - t0)) s" | tee -a "$L/summary.txt"
  grep -h '^RESULT' "$L/$name.log" | sed "s/^RESULT /RESULT run=$name /" | tee -a "$L/results.txt"
  grep -h 'memory plan' "$L/$name.log" | head -1 | sed 's/.*memory plan/  memory plan/'
}

for p in "${parts[@]}"; do
  case $p in
    bw) (cd "$U" && timeout 120 torchrun --standalone --nproc_per_node "$G" "$D/torch_allreduce_bw.py") >"$L/bw.log" 2>&1
        echo "bw rc=$?" | tee -a "$L/summary.txt"; grep -h RESULT "$L/bw.log" | tee -a "$L/results.txt" ;;
    d12) for z in 0 1 2 3; do for n in $counts; do
           run "d12_z${z}_n$n" 120 "$n" --model d12 --batch 64 --zero "$z" --steps 5 --max-seconds 30; done; done ;;
    equiv) # 20 steps at 65,536 tokens per step (B 8 x 8 micro-batches over the ranks)
        run equiv_ref 200 1 --model d12 --batch 8 --tokens-per-step 65536 --steps 20 --save-params "$U/ref.bin"
        last=${counts##* }
        for z in 0 1 2 3; do
          run "equiv_z${z}_n$last" 120 "$last" --model d12 --batch 8 --tokens-per-step 65536 --steps 20 --zero "$z" \
            --compare-params "$U/ref.bin"
        done ;;
    d48) for n in $counts; do
           run "d48_z3_n$n" 240 "$n" --model d48 --batch 16 --zero 3 --ckpt --steps 3 --max-seconds 60
         done ;;
    nccl) # the NCCL tests that need 2 GPUs (issue 18's ordered wait under a stuck collective: the
          # timeout reported by a host read and by a device free, the killed rank, NCCL's native
          # bf16 sums against f32 accumulation) and the rest of the NCCL label
        GPU_NCCL_ONLY=1 GPU_BUNDLE="$D" timeout 300 bash "$D/gpu-check.sh" "$L/nccl" >"$L/nccl.out" 2>&1
        echo "nccl rc=$?" | tee -a "$L/summary.txt"; sed -n '/^== summary/,$p' "$L/nccl.out" | tee -a "$L/results.txt" ;;
    *) echo "gpu-multi: unknown part $p (bw d12 equiv d48 nccl)"; exit 2 ;;
  esac
done
# scaling efficiency: tok/s on N GPUs over N x tok/s on 1, per model and stage
awk '/^RESULT run=d(12|48)_z/ { split($2, r, "="); split(r[2], f, "_"); key = f[1] "_" f[2]; n = substr(f[3], 2);
       for (i = 3; i <= NF; i++) if ($i ~ /^tok_s=/) { split($i, t, "="); tok[key, n] = t[2] } keys[key]; ns[n] }
     END { for (k in keys) for (n in ns) if (tok[k, n] && tok[k, 1])
             printf "scaling %s on %d GPUs: %.0f tok/s, %.1f %% of %d x 1 GPU\n", k, n, tok[k, n], 100 * tok[k, n] / (n * tok[k, 1]), n }' \
  "$L/results.txt" | sort | tee "$L/scaling.txt"
