#!/bin/sh
# Issue 21: the starter configs in configs/ (ZeRO-1/2/3, bf16, fp16 with dynamic loss scaling,
# activation checkpointing) pass `dsc config check` and train 3 steps on a tiny GPT with what
# each one sets in effect: the ZeRO stage, 16-bit parameters (2 bytes each: 16160 x 2 B =
# 0.03 MiB, fp32 0.06 MiB; ZeRO-3 counts the partition and the gathered copy: 0.06 MiB in bf16,
# 0.12 MiB in fp32), fp16's initial dynamic scale 2^16, the lr of its warmup after two
# updates, and checkpointed blocks (a smaller activation peak, the same losses).
# Usage: starter_configs.sh DSC             one rank, every config
#        starter_configs.sh DSC mpi MPIRUN  ZeRO-2 and ZeRO-3 on 2 ranks through `dsc launch`
set -u
DSC=$1
MODE=${2:-one}
MPIRUN=${3:-mpirun}
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
# run CMD...: runs CMD (exit status 0 wanted), its output (stdout and stderr) in $out.
run() {
  out=$(timeout 120 "$@" 2>&1) || fail "exit $?: $*: $(echo "$out" | tail -3)"
}
has() { echo "$out" | grep -Eq -- "$1" || fail "$2: no /$1/ in: $(echo "$out" | tail -6)"; }
small="--layers 1 --embd 32 --heads 2 --context 16 --eval-every 0 --data README.md --steps 3"

if [ "$MODE" = mpi ]; then
  # ZeRO-2 with -np 2; ZeRO-3 with DeepSpeed's host selection (mpirun --host localhost:2).
  for c in "ds_zero2 2 -np 2" "ds_zero3 3 --hostfile configs/hostfile --include localhost:0,1"; do
    set -- $c
    f=configs/$1.json stage=$2
    shift 2
    [ -f "$f" ] || fail "$f is not in the tree"
    run "$DSC" launch "$@" --mpirun "$MPIRUN" train --config "$f" $small
    has "^dsc launch: $MPIRUN -np 2 .*dsc train --config $f" "$f: the mpirun line"
    [ "$1" = -np ] || has "-np 2 --host localhost:2 " "$f: the mpirun line"
    has "train_batch_size=32, train_micro_batch_size_per_gpu=8, gradient_accumulation_steps=2, world_size=2" "$f on 2 ranks"
    has "memory per rank \\(ZeRO stage $stage, 2 rank\\(s\\)\\)" "$f on 2 ranks"
    has 'step +3/3 \| loss [0-9.]+' "$f on 2 ranks"
    echo "2 ranks: dsc launch $* ... $f (ZeRO-$stage) trained 3 steps"
  done
  echo PASS
  exit 0
fi

# file  ZeRO stage  parameter MiB  loss scale  lr after 2 updates (warmup, hand-derived)
#   WarmupCosineLR linear, 100 steps, lr 6e-4: 6e-4 x 2/100 = 1.2e-5
#   ds_zero2: WarmupLR linear, 20 steps, lr 2e-3: 2e-3 x 2/20 = 2e-4
#   ds_zero3: WarmupDecayLR (log warmup), 100 steps: 6e-4 x ln 3 / ln 100 = 1.431e-4
for row in "ds_zero1 1 0.06 1 1.200e-05" "ds_zero2 2 0.03 1 2.000e-04" "ds_zero3 3 0.06 1 1.431e-04" \
           "ds_bf16 0 0.03 1 1.200e-05" "ds_fp16 0 0.03 65536 1.200e-05" "ds_activation_checkpointing 1 0.03 1 1.200e-05"; do
  set -- $row
  f=configs/$1.json
  [ -f "$f" ] || fail "$f is not in the tree"
  for ws in 1 2 8; do
    run "$DSC" config check "$f" --world-size $ws
  done
  run "$DSC" train --config "$f" $small
  has 'train_batch_size=16, train_micro_batch_size_per_gpu=8, gradient_accumulation_steps=2, world_size=1' "$f"
  has "memory per rank \\(ZeRO stage $2, 1 rank\\(s\\)\\): parameters $3 MiB" "$f"
  has "step +3/3 \\| loss [0-9.]+ \\| lr $5 \\| grad norm [0-9.]+ \\(clipped 1.000\\) \\| loss scale $4 \\| skipped 0" "$f"
  echo "1 rank: $f (ZeRO-$2, parameters $3 MiB, loss scale $4, lr $5 at step 3)"
done

# Activation checkpointing: on 4 blocks, the same losses as without the section's
# number_checkpoints, with a smaller activation peak.
f=configs/ds_activation_checkpointing.json
grep -v '"number_checkpoints"' "$f" > "$d/no_ckpt.json"
grep -q '"number_checkpoints"' "$f" || fail "$f sets no number_checkpoints"
peak() { echo "$out" | sed -n 's/.*+ activations \([0-9.]*\) MiB = .*/\1/p'; }
losses() { echo "$out" | sed -n 's/^step .*| loss \([0-9.]*\) .*/\1/p' | tr '\n' ' '; }
run "$DSC" train --config "$f" $small --layers 4
has 'number_checkpoints=12: models built on dsc checkpoint 12 blocks' "$f"
ckpt_peak=$(peak) ckpt_losses=$(losses)
run "$DSC" train --config "$d/no_ckpt.json" $small --layers 4
full_peak=$(peak) full_losses=$(losses)
[ -n "$ckpt_peak" ] && [ -n "$full_peak" ] || fail "no activation figure in the memory plan"
awk -v a="$ckpt_peak" -v b="$full_peak" 'BEGIN { exit !(a < b) }' ||
  fail "$f: activations $ckpt_peak MiB, not below $full_peak MiB without checkpointing"
[ -n "$ckpt_losses" ] && [ "$ckpt_losses" = "$full_losses" ] ||
  fail "$f: losses '$ckpt_losses' differ from '$full_losses' without checkpointing"
echo "activation checkpointing: activations $ckpt_peak MiB (without: $full_peak MiB), losses $ckpt_losses"
echo PASS
