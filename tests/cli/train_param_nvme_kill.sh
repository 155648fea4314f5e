#!/bin/sh
# Issue 20: a run whose parameter partition lives on NVMe (offload_param.device "nvme", ZeRO
# stage 3, bf16) together with its optimizer state (offload_optimizer.device "nvme"), killed
# with SIGKILL while it trains, resumes from its last checkpoint to the same step-20 line (loss,
# lr, gradient norms) as an uninterrupted run, and leaves nothing in either nvme_path; the same
# checkpoint resumed without any offload gives that line too (checkpoints hold the fp32 master
# and the states in their usual files, never the swap files' contents).
# Buffers of 256 elements and sub-groups of 64 make every gather and every step mostly swap
# I/O, so the kill lands while parameters and states are swapped out.
# Usage: train_param_nvme_kill.sh DSC
set -u
DSC=$1
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
mkdir "$d/pswap" "$d/oswap"
conf() { # file, zero_optimization's offload keys
  printf '%s' '{"train_micro_batch_size_per_gpu": 8, "bf16": {"enabled": true}, "gradient_clipping": 1.0,
 "zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0'"$2"'},
 "optimizer": {"type": "AdamW", "params": {"lr": 0.002}},
 "scheduler": {"type": "WarmupCosineLR", "params": {"total_num_steps": 20, "warmup_num_steps": 3}}}' > "$d/$1"
}
conf c.json ', "sub_group_size": 64,
 "offload_param": {"device": "nvme", "nvme_path": "'"$d/pswap"'", "buffer_count": 3, "buffer_size": 256},
 "offload_optimizer": {"device": "nvme", "nvme_path": "'"$d/oswap"'", "buffer_count": 4,
   "pipeline_read": true, "pipeline_write": true}'
conf mem.json ''
a="--model gpt2-tiny --context 32 --eval-every 0 --data README.md --no-progress"
step20() { grep 'step *20/20' "$1" | cut -d'|' -f2-5; }
$DSC train $a --config "$d/mem.json" --steps 20 > "$d/mem.log" 2>&1 || fail "the run without offload failed: $(tail -3 "$d/mem.log")"
$DSC train $a --config "$d/c.json" --steps 20 > "$d/straight.log" 2>&1 || fail "the uninterrupted run failed: $(tail -3 "$d/straight.log")"
grep -q "parameter partition (.*) on NVMe" "$d/straight.log" || fail "no parameter NVMe line in the log: $(head -20 "$d/straight.log")"
grep -q "parameter offload per rank: NVMe swap file" "$d/straight.log" || fail "dsc train does not print the parameter swap file's bytes"
# the stage-3 schedule read shards ahead (those that fit one 256-element buffer)
hits=$(sed -n 's/.*parameter swap file: [0-9]* shard reads (\([0-9]*\) from a read-ahead).*/\1/p' "$d/straight.log")
[ "${hits:-0}" -gt 0 ] || fail "no shard came from a read-ahead: $(grep 'parameter swap file:' "$d/straight.log")"
want=$(step20 "$d/straight.log")
[ -n "$want" ] || fail "no step-20 line: $(tail -3 "$d/straight.log")"
[ "$(step20 "$d/mem.log")" = "$want" ] || fail "with NVMe offload step 20 is '$want', without '$(step20 "$d/mem.log")'"
. "$(dirname "$0")/kill_lib.sh"
train_then_kill "$d/killed.log" $a --config "$d/c.json" --steps 20
[ -z "$(ls -A "$d/pswap" "$d/oswap" | grep -v '^/\|^$')" ] || fail "the killed run left files: $(ls -A "$d/pswap" "$d/oswap")"
cp -r "$d/ck" "$d/ck_mem"
$DSC train $a --config "$d/c.json" --steps 20 --save "$d/ck" --resume > "$d/resumed.log" 2>&1 ||
  fail "resuming from $tag failed: $(tail -3 "$d/resumed.log")"
[ "$(step20 "$d/resumed.log")" = "$want" ] ||
  fail "resumed from $tag: step 20 is '$(step20 "$d/resumed.log")', uninterrupted '$want'"
[ -z "$(ls -A "$d/pswap" "$d/oswap" | grep -v '^/\|^$')" ] || fail "files left: $(ls -A "$d/pswap" "$d/oswap")"
$DSC train $a --config "$d/mem.json" --steps 20 --save "$d/ck_mem" --resume > "$d/mem_resumed.log" 2>&1 ||
  fail "resuming $tag without offload failed: $(tail -3 "$d/mem_resumed.log")"
[ "$(step20 "$d/mem_resumed.log")" = "$want" ] ||
  fail "resumed without offload: step 20 is '$(step20 "$d/mem_resumed.log")', want '$want'"
echo "$(grep -o 'parameter swap file: .*' "$d/straight.log")"
echo "killed after $tag, resumed: $want"
echo PASS
