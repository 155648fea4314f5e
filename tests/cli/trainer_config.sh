#!/bin/sh
# Issue 21 items 1-2: dsc train as a DeepSpeed / Hugging Face user expects it. A config with no
# optimizer trains (AdamW from the flags, a schedule over --steps); an "auto" template trains
# with flags, and `dsc config check` lists each resolved value with its source; flags override
# their keys with the source "command line"; every unresolved "auto" is reported at once; the
# built-in config's schedule follows --steps; DeepSpeed's --deepspeed_config / --local_rank.
# Usage: trainer_config.sh DSC
set -u
DSC=$1
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
# expect WANT_RC REGEX CMD...: runs CMD, checks its exit status and that its output (stdout and
# stderr) matches the extended regex.
expect() {
  want=$1; re=$2; shift 2
  out=$(timeout 120 "$@" 2>&1); rc=$?
  [ $rc -eq "$want" ] || fail "exit $rc, want $want: $*: $(echo "$out" | tail -3)"
  echo "$out" | grep -Eq -- "$re" || fail "no /$re/ in the output of: $*: $(echo "$out" | tail -5)"
}
small="--layers 1 --embd 32 --heads 2 --context 16 --eval-every 0 --data README.md"

# 1. No optimizer: AdamW (lr 0.002) with warmup + cosine decay to the last step, said in one line.
printf '%s\n' '{"train_micro_batch_size_per_gpu": 4, "gradient_clipping": 1.0}' > "$d/noopt.json"
expect 0 'dsc train: no optimizer in the config: AdamW \(lr 0\.002, betas 0\.9/0\.99, weight decay 0\.01\), linear warmup 4 steps, cosine decay to step 30' \
  "$DSC" train --config "$d/noopt.json" $small --steps 30
# WarmupCosineLR ends at lr * cos_min_ratio = 0.002 * 1e-4 at the last step.
echo "$out" | grep -Eq 'step +30/30 \| loss [0-9.]+ \| lr 2\.000e-07' || fail "no-optimizer run: lr at step 30 is not 2e-07: $(echo "$out" | tail -2)"
first=$(echo "$out" | sed -n 's/^step  *1\/30 | loss \([0-9.]*\).*/\1/p')
last=$(echo "$out" | sed -n 's/^step  *30\/30 | loss \([0-9.]*\).*/\1/p')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.3) }' || fail "no-optimizer run: loss $first -> $last did not fall"

# 2. An "auto" template (the HF Trainer's) trains with flags; each resolved value with its source.
cat > "$d/auto.json" <<'EOF'
{
  "train_batch_size": "auto",
  "train_micro_batch_size_per_gpu": "auto",
  "gradient_accumulation_steps": "auto",
  "gradient_clipping": "auto",
  "bf16": {"enabled": "auto"},
  "optimizer": {"type": "AdamW", "params": {"lr": "auto", "betas": "auto", "eps": "auto", "weight_decay": "auto"}},
  "scheduler": {"type": "WarmupDecayLR",
                "params": {"warmup_min_lr": "auto", "warmup_max_lr": "auto", "warmup_num_steps": "auto", "total_num_steps": "auto"}},
  "zero_optimization": {"stage": 2, "reduce_bucket_size": "auto", "stage3_prefetch_bucket_size": "auto",
                        "stage3_param_persistence_threshold": "auto"}
}
EOF
expect 0 'train_batch_size=8, train_micro_batch_size_per_gpu=4, gradient_accumulation_steps=2, world_size=1' \
  "$DSC" train --config "$d/auto.json" $small --steps 20 --lr 1e-3 --micro-batch 4 --grad-accum 2
for want in 'train_batch_size = 8 \(auto: world size 1 x micro batch 4 x accumulation 2\)' \
            'optimizer.params.lr = 0.001 \(auto: --lr\)' \
            'zero_optimization.reduce_bucket_size = 1024 \(auto: hidden x hidden = 32 x 32 \(the model.s width\)\)'; do
  echo "$out" | grep -Eq "$want" || fail "auto run: no /$want/"
done
echo "$out" | grep -Eq 'step +20/20 \| loss' || fail "auto run: did not reach step 20"
# dsc config check at world size 4 (model width 64): the values and their sources.
expect 0 '"train_batch_size": 32, +// auto: world size 4 x micro batch 4 x accumulation 2' \
  "$DSC" config check "$d/auto.json" --world-size 4 --embd 64 --lr 3e-4 --micro-batch 4 --grad-accum 2 --bf16 --steps 500
for want in '"lr": 0.0003, +// auto: --lr' '"warmup_max_lr": 0.0003, +// auto: the optimizer.s lr \(--lr\)' \
            '"total_num_steps": 500, +// auto: --steps' '"warmup_num_steps": 75, +// auto: dsc train default: 15% of --steps' \
            '"enabled": true, +// auto: --bf16' '"gradient_clipping": 1.0, +// auto: dsc train default' \
            '"reduce_bucket_size": 4096, +// auto: hidden x hidden = 64 x 64 \(--embd\)' \
            '"stage3_prefetch_bucket_size": 3686, +// auto: 0.9 x hidden x hidden' \
            '"stage3_param_persistence_threshold": 640, +// auto: 10 x hidden = 10 x 64' \
            '"betas": \[0.9, 0.999\], +// auto: dsc train default'; do
  echo "$out" | grep -Eq -- "$want" || fail "config check --world-size 4: no /$want/"
done

# 3. Flags override the file's keys, shown with the source "command line".
expect 0 '"lr": 0.0001, +// command line: --lr' \
  "$DSC" config check tests/configs/valid/hf_zero2_fp16.json --world-size 2 --lr 1e-4 --zero-stage 1 --clip 0.5 --bf16 --micro-batch 2
for want in '"warmup_max_lr": 0.0001, +// command line: --lr' '"stage": 1, +// command line: --zero-stage' \
            '"gradient_clipping": 0.5, +// command line: --clip' '"train_micro_batch_size_per_gpu": 2, +// command line: --micro-batch' \
            '"gradient_accumulation_steps": 2, +// tests/configs/valid/hf_zero2_fp16.json' \
            '"train_batch_size": 8, +// derived'; do
  echo "$out" | grep -Eq -- "$want" || fail "config check with flags: no /$want/"
done
[ "$(echo "$out" | grep -Ec '"enabled": (true|false), +// command line: --bf16')" -eq 2 ] || fail "--bf16 must set bf16.enabled and clear fp16.enabled"
# A train_batch_size number stays the global batch (the accumulation is derived) unless the
# accumulation is fixed too, by the file or --grad-accum: then it is recomputed from the flags.
printf '%s\n' '{"train_batch_size": 32, "train_micro_batch_size_per_gpu": 4}' > "$d/tb.json"
expect 0 '"gradient_accumulation_steps": 4, +// derived' "$DSC" config check "$d/tb.json" --micro-batch 8
echo "$out" | grep -Eq '"train_batch_size": 32, +// .*tb.json:1:22' || fail "--micro-batch changed a file's train_batch_size"
expect 0 '"train_batch_size": 16, +// command line: world size 1 x micro batch 8 x accumulation 2' \
  "$DSC" config check "$d/tb.json" --micro-batch 8 --grad-accum 2
# ... and the same flags drive dsc train (a file's micro batch 4 becomes 2).
expect 0 'train_micro_batch_size_per_gpu=2, gradient_accumulation_steps=1' \
  "$DSC" train --config "$d/noopt.json" $small --steps 2 --micro-batch 2 --zero-stage 1

# 4. Every "auto" dsc train cannot fill in, at once; the library alone still refuses "auto".
printf '%s\n' '{"train_batch_size": "auto", "zero_optimization": {"stage": "auto", "overlap_comm": "auto"}, "steps_per_print": "auto"}' > "$d/bad.json"
expect 1 'zero_optimization.stage: "auto" has no value dsc train can fill in: pass --zero-stage N' "$DSC" config check "$d/bad.json"
[ "$(echo "$out" | grep -c 'has no value dsc train can fill in')" -eq 3 ] || fail "not every unresolved auto listed: $out"
# ... and every other problem of the file with them, one line each.
cat > "$d/many.json" <<'EOF'
{
  "train_batch_size": "auto",
  "train_micro_batch_size_per_gpu": 4,
  "gradient_clipping": -1,
  "zero_optimization": {"stage": 7, "reduce_bucket_sise": 5, "overlap_comm": "auto"},
  "fp16": {"enabled": "yes"},
  "steps_per_prnt": 10
}
EOF
expect 1 '6 problems' "$DSC" config check "$d/many.json"
for want in 'overlap_comm: "auto" has no value' 'many.json:4:24: gradient_clipping: must be >= 0' \
            'many.json:5:34: zero_optimization.stage: must be in 0..3' 'many.json:5:37: zero_optimization.reduce_bucket_sise: unknown key' \
            'many.json:6:23: fp16.enabled: expected true or false' 'many.json:7:3: steps_per_prnt: unknown key'; do
  echo "$out" | grep -q -- "^error: .*$want" || fail "config check many.json: no '$want'"
done
printf '%s\n' '{"train_micro_batch_size_per_gpu": 4, "optimizer": {"type": "AdamW", "params": {"lr": 0.001}}}' > "$d/plain.json"
expect 0 '"type": "adamw", +// .*plain.json:1:' "$DSC" config check "$d/plain.json"

# 5. The built-in config's schedule spans --steps: the lr still decays at step 200 of 260 and
#    reaches its minimum (0.002 * 1e-4) at step 260 (before: 2e-07 from step 200 on).
expect 0 'step +260/260 \| loss [0-9.]+ \| lr 2\.000e-07' "$DSC" train $small --steps 260
echo "$out" | grep -Eq 'step +200/260 \| loss [0-9.]+ \| lr [1-9]\.[0-9]+e-04' || fail "--steps 260: lr at step 200 is not ~1e-4: $(echo "$out" | grep 'step  *200/')"
# A file's schedule shorter than --steps is said once.
printf '%s\n' '{"train_micro_batch_size_per_gpu": 4, "optimizer": {"type": "AdamW", "params": {"lr": 0.001}}, "scheduler": {"type": "WarmupCosineLR", "params": {"total_num_steps": 5, "warmup_num_steps": 1}}}' > "$d/short.json"
expect 0 'warning: scheduler.params.total_num_steps is 5 but --steps is 8: from step 5 on the lr stays' \
  "$DSC" train --config "$d/short.json" $small --steps 8

# 6. DeepSpeed's spellings: --deepspeed_config FILE, --deepspeed FILE, --local_rank.
expect 0 'no optimizer in the config' "$DSC" train --deepspeed_config "$d/noopt.json" $small --steps 1 --local_rank 0
expect 0 'no optimizer in the config' "$DSC" train --deepspeed "$d/noopt.json" $small --steps 1 --local_rank=0
expect 2 '--local_rank 3, but MPI made this process local rank 0' \
  env OMPI_COMM_WORLD_LOCAL_RANK=0 "$DSC" train --config "$d/noopt.json" $small --steps 1 --local_rank 3

# 7. --resume takes the model's shape from the checkpoint: the same step as with the flags repeated.
shape="--layers 2 --embd 32 --heads 2 --context 24"
expect 0 'saved checkpoint' "$DSC" train $shape --data README.md --eval-every 0 --steps 6 --save "$d/ck"
cp -r "$d/ck" "$d/ck2"
expect 0 'resumed from' "$DSC" train $shape --data README.md --eval-every 0 --steps 12 --save "$d/ck" --resume
with=$(echo "$out" | grep -E '^step +12/12' | cut -d'|' -f2-5)
expect 0 'resuming .*ck2: model shape from the checkpoint: 2 layers, 2 heads, width 32, context 24' \
  "$DSC" train --data README.md --eval-every 0 --steps 12 --save "$d/ck2" --resume
without=$(echo "$out" | grep -E '^step +12/12' | cut -d'|' -f2-5)
[ -n "$with" ] && [ "$with" = "$without" ] || fail "resume without shape flags: '$without', with them: '$with'"
# A shape flag that differs from the checkpoint's is refused with both values, before any work;
# the same flag with the checkpoint's value (and only some of them) is fine.
expect 1 '--layers: layers 3, but the checkpoint in .*ck2 has layers 2; leave the flag out' \
  "$DSC" train --layers 3 --data README.md --eval-every 0 --steps 14 --save "$d/ck2" --resume
expect 1 '--context: context 32, but the checkpoint in .*ck2 has context 24' \
  "$DSC" train --context 32 --data README.md --eval-every 0 --steps 14 --save "$d/ck2" --resume
expect 0 'resumed from' "$DSC" train --embd 32 --data README.md --eval-every 0 --steps 14 --save "$d/ck2" --resume
echo PASS
