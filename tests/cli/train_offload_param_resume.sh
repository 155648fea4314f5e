#!/bin/sh
# Issue 20: the parameter partition offloaded to host memory (offload_param.device "cpu", ZeRO
# stage 3) from the guarded device, whose bytes fault on host access, in bf16, without and with
# the optimizer offload: the run's step-20 line (loss, lr, gradient norms) equals the run without
# offload; a checkpoint saved at step 10 with the offload resumes with it, and one saved without
# resumes with it (and back), each giving that step-20 line.
# Usage: train_offload_param_resume.sh DSC
set -u
DSC=$1
export DSC_DEVICE=guarded
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
a="--model gpt2-tiny --context 32 --eval-every 0 --data README.md --no-progress"
step20() { grep 'step *20/20' "$1" | cut -d'|' -f2-5; }
conf() { # name, offload_param device, offload_optimizer device
  printf '%s' '{"train_micro_batch_size_per_gpu": 8, "bf16": {"enabled": true}, "gradient_clipping": 1.0,
 "zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0,
   "offload_param": {"device": "'"$2"'"}, "offload_optimizer": {"device": "'"$3"'"}},
 "optimizer": {"type": "AdamW", "params": {"lr": 0.002}},
 "scheduler": {"type": "WarmupCosineLR", "params": {"total_num_steps": 20, "warmup_num_steps": 3}}}' > "$d/$1.json"
}
conf none none none
conf param cpu none
conf both cpu cpu
$DSC train $a --config "$d/none.json" --steps 20 > "$d/none.log" 2>&1 || fail "without offload: $(tail -3 "$d/none.log")"
want=$(step20 "$d/none.log")
[ -n "$want" ] || fail "no step-20 line: $(tail -3 "$d/none.log")"
for c in param both; do
  $DSC train $a --config "$d/$c.json" --steps 20 > "$d/$c.log" 2>&1 || fail "$c: $(tail -3 "$d/$c.log")"
  grep -q "parameter partition (.*) offloaded from guarded to host memory" "$d/$c.log" || fail "$c: no offload line: $(head -5 "$d/$c.log")"
  [ "$(step20 "$d/$c.log")" = "$want" ] || fail "$c: step 20 is '$(step20 "$d/$c.log")', without offload '$want'"
done
grep -q "parameter offload per rank: host memory" "$d/param.log" || fail "dsc train does not print the partition's host bytes"
for saved in none param both; do
  rm -rf "$d/ck_$saved"
  $DSC train $a --config "$d/$saved.json" --steps 10 --save "$d/ck_$saved" > "$d/save.log" 2>&1 ||
    fail "saving with $saved: $(tail -3 "$d/save.log")"
done
for pair in none:param param:param param:none both:both both:param none:both; do
  saved=${pair%%:*}
  resumed=${pair##*:}
  rm -rf "$d/ck"
  cp -r "$d/ck_$saved" "$d/ck"
  $DSC train $a --config "$d/$resumed.json" --steps 20 --save "$d/ck" --resume > "$d/resume.log" 2>&1 ||
    fail "saved with $saved, resumed with $resumed: $(tail -3 "$d/resume.log")"
  [ "$(step20 "$d/resume.log")" = "$want" ] ||
    fail "saved with $saved, resumed with $resumed: step 20 is '$(step20 "$d/resume.log")', want '$want'"
done
echo "step 20 $want (offload_param, with offload_optimizer, and every save/resume pair)"
echo PASS
