#!/bin/sh
# Issue 20: a run whose optimizer state lives on NVMe (offload_optimizer.device "nvme"),
# killed with SIGKILL while it trains, resumes from its last checkpoint to the same step-20
# line (loss, lr, gradient norms) as an uninterrupted run, and leaves nothing in nvme_path; the
# same checkpoint resumed without offload gives that line too.
# Sub-groups of 64 elements make each step 1688 swap reads and writes, so a step's time is
# mostly swapping (measured: 40 such steps take 12.7 s, 0.5 s with the state in memory) and
# the kill lands inside a swap (checkpoints copy the state only between steps, through the
# swap file). Usage: train_nvme_kill.sh DSC
set -u
DSC=$1
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
mkdir "$d/swap"
printf '%s' '{"train_micro_batch_size_per_gpu": 8, "zero_optimization": {"stage": 2, "sub_group_size": 64,
 "offload_optimizer": {"device": "nvme", "nvme_path": "'"$d/swap"'", "buffer_count": 4,
 "pipeline_read": true, "pipeline_write": true}},
 "optimizer": {"type": "AdamW", "params": {"lr": 0.002}},
 "scheduler": {"type": "WarmupCosineLR", "params": {"total_num_steps": 20, "warmup_num_steps": 3}}}' > "$d/c.json"
a="--model gpt2-tiny --context 32 --eval-every 0 --data README.md --config $d/c.json --no-progress"
$DSC train $a --steps 20 > "$d/straight.log" 2>&1 || fail "the uninterrupted run failed: $(tail -3 "$d/straight.log")"
grep -q "optimizer state (DeepSpeedCPUAdam) on NVMe" "$d/straight.log" || fail "no NVMe line in the log: $(head -20 "$d/straight.log")"
grep -q "optimizer offload per rank: NVMe swap file" "$d/straight.log" || fail "dsc train does not print the NVMe bytes"
grep 'step *20/20' "$d/straight.log" | cut -d'|' -f2-5 > "$d/straight"
[ -s "$d/straight" ] || fail "no step-20 line: $(tail -3 "$d/straight.log")"
. "$(dirname "$0")/kill_lib.sh"
train_then_kill "$d/killed.log" $a --steps 20
[ -z "$(ls -A "$d/swap")" ] || fail "the killed run left files in nvme_path: $(ls -A "$d/swap")"
cp -r "$d/ck" "$d/ck_mem"
$DSC train $a --steps 20 --save "$d/ck" --resume > "$d/resumed.log" 2>&1 ||
  fail "resuming from $tag failed: $(tail -3 "$d/resumed.log")"
grep 'step *20/20' "$d/resumed.log" | cut -d'|' -f2-5 > "$d/resumed"
cmp -s "$d/straight" "$d/resumed" ||
  fail "resumed from $tag: step 20 is '$(cat "$d/resumed")', uninterrupted '$(cat "$d/straight")'"
[ -z "$(ls -A "$d/swap")" ] || fail "files left in nvme_path: $(ls -A "$d/swap")"
# The checkpoint holds the state in its usual files: a run without offload resumes it alike.
printf '%s' '{"train_micro_batch_size_per_gpu": 8, "zero_optimization": {"stage": 2},
 "optimizer": {"type": "AdamW", "params": {"lr": 0.002}},
 "scheduler": {"type": "WarmupCosineLR", "params": {"total_num_steps": 20, "warmup_num_steps": 3}}}' > "$d/mem.json"
$DSC train $(echo "$a" | sed "s#$d/c.json#$d/mem.json#") --steps 20 --save "$d/ck_mem" --resume > "$d/mem.log" 2>&1 ||
  fail "resuming $tag without offload failed: $(tail -3 "$d/mem.log")"
grep 'step *20/20' "$d/mem.log" | cut -d'|' -f2-5 | cmp -s "$d/straight" - ||
  fail "resumed without offload: step 20 is '$(grep 'step *20/20' "$d/mem.log")'"
echo "killed after $tag, resumed: $(cat "$d/resumed")"
echo PASS
