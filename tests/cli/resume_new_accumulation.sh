#!/bin/sh
# Issue 14 item 2: a resume whose accumulation count differs from the saving run's starts at
# an accumulation boundary of the new run: it trains, saves at every step and resumes again.
# Case "gas": train_batch_size 12 with micro batch 12 (GAS 1), resumed with micro batch 6
# (GAS 2). Case "world" (needs mpirun): 2 ranks with micro batch 6 (GAS 1), resumed on one
# rank (GAS 2). Usage: resume_new_accumulation.sh DSC gas|world [MPIEXEC]
set -u
DSC=$1
mode=$2
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
opt='"optimizer": {"type": "AdamW", "params": {"lr": 0.001}}'
echo "{\"train_batch_size\": 12, $opt}" > "$d/gas1.json"
echo "{\"train_batch_size\": 12, \"train_micro_batch_size_per_gpu\": 6, $opt}" > "$d/micro6.json"
a="--model gpt2-tiny --context 16 --eval-every 0 --data README.md"
if [ "$mode" = gas ]; then
  $DSC train $a --config "$d/gas1.json" --steps 3 --save "$d/ck" > "$d/log1" 2>&1 || fail "first run: $(cat "$d/log1")"
else
  $3 -np 2 --oversubscribe $DSC train $a --config "$d/micro6.json" --steps 3 --save "$d/ck" > "$d/log1" 2>&1 ||
    fail "first run on 2 ranks: $(cat "$d/log1")"
fi
grep -q "1 accumulation step(s)" "$d/log1" || fail "the first run does not accumulate over 1 micro-batch: $(cat "$d/log1")"
# Resumed with GAS 2 and a save every step: every save must work, and the step counts hold.
$DSC train $a --config "$d/micro6.json" --steps 6 --save "$d/ck" --save-every 1 --resume > "$d/log2" 2>&1 ||
  fail "the resumed run failed: $(tail -3 "$d/log2")"
grep -q "2 accumulation step(s)" "$d/log2" || fail "the resumed run does not accumulate over 2: $(cat "$d/log2")"
grep -q "micro_steps restarts at 4" "$d/log2" || fail "the resume does not say where micro_steps restarts: $(cat "$d/log2")"
[ "$(cat "$d/ck/latest")" = global_step6 ] || fail "latest is $(cat "$d/ck/latest"), want global_step6"
for s in 4 5 6; do [ -f "$d/ck/global_step$s/manifest.json" ] || fail "no checkpoint at step $s"; done
# The counters: 3 micro-steps, rounded up to 4, then 2 per update: 6 after step 4 ... 10 after 6.
for s in 4:6 5:8 6:10; do
  m="$d/ck/global_step${s%%:*}/manifest.json"
  grep -q "\"micro_steps\": ${s##*:}," "$m" || fail "global_step${s%%:*}: micro_steps is not ${s##*:}: $(grep -o '"micro_steps[^,]*' "$m")"
done
# And once more from step 6 with the same configuration (the usual resume).
$DSC train $a --config "$d/micro6.json" --steps 7 --save "$d/ck" --resume > "$d/log3" 2>&1 || fail "second resume: $(tail -3 "$d/log3")"
[ "$(cat "$d/ck/latest")" = global_step7 ] || fail "latest is $(cat "$d/ck/latest") after the second resume"
echo PASS
