#!/bin/sh
# Issue 20: the optimizer offloaded to the host (offload_optimizer.device "cpu") from the
# guarded device, whose bytes fault on host access, at ZeRO stages 1-3 in bf16: the run's
# step-20 line (loss, lr, gradient norms) equals the run without offload; its checkpoints hold
# the same records, so a checkpoint saved at step 10 with offload resumes without it, one
# saved without offload resumes with it, and each gives that step-20 line.
# Usage: train_offload_cpu_resume.sh DSC
set -u
DSC=$1
export DSC_DEVICE=guarded
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
a="--model gpt2-tiny --context 32 --eval-every 0 --data README.md --no-progress"
step20() { grep 'step *20/20' "$1" | cut -d'|' -f2-5; }
for stage in 1 2 3; do
  for off in none cpu; do
    printf '%s' '{"train_micro_batch_size_per_gpu": 8, "bf16": {"enabled": true}, "gradient_clipping": 1.0,
 "zero_optimization": {"stage": '"$stage"', "offload_optimizer": {"device": "'"$off"'"}},
 "optimizer": {"type": "AdamW", "params": {"lr": 0.002}},
 "scheduler": {"type": "WarmupCosineLR", "params": {"total_num_steps": 20, "warmup_num_steps": 3}}}' > "$d/$off.json"
  done
  $DSC train $a --config "$d/none.json" --steps 20 > "$d/none.log" 2>&1 || fail "stage $stage without offload: $(tail -3 "$d/none.log")"
  want=$(step20 "$d/none.log")
  [ -n "$want" ] || fail "stage $stage: no step-20 line: $(tail -3 "$d/none.log")"
  $DSC train $a --config "$d/cpu.json" --steps 20 > "$d/cpu.log" 2>&1 || fail "stage $stage with offload: $(tail -3 "$d/cpu.log")"
  grep -q "offloaded from guarded to the host" "$d/cpu.log" || fail "stage $stage: no offload line: $(head -5 "$d/cpu.log")"
  grep -q "optimizer offload per rank: host memory" "$d/cpu.log" || fail "stage $stage: dsc train does not print the host bytes"
  [ "$(step20 "$d/cpu.log")" = "$want" ] || fail "stage $stage: offloaded step 20 is '$(step20 "$d/cpu.log")', without offload '$want'"
  for saved in none cpu; do
    rm -rf "$d/ck_$saved"
    $DSC train $a --config "$d/$saved.json" --steps 10 --save "$d/ck_$saved" > "$d/save.log" 2>&1 ||
      fail "stage $stage: saving with offload $saved: $(tail -3 "$d/save.log")"
  done
  for saved in none cpu; do
    for resumed in none cpu; do
      rm -rf "$d/ck"
      cp -r "$d/ck_$saved" "$d/ck"
      $DSC train $a --config "$d/$resumed.json" --steps 20 --save "$d/ck" --resume > "$d/resume.log" 2>&1 ||
        fail "stage $stage: saved with offload $saved, resumed with $resumed: $(tail -3 "$d/resume.log")"
      [ "$(step20 "$d/resume.log")" = "$want" ] ||
        fail "stage $stage: saved with offload $saved, resumed with $resumed: step 20 is '$(step20 "$d/resume.log")', want '$want'"
    done
  done
  echo "stage $stage: step 20 $want (offloaded, and every save/resume pair)"
done
echo PASS
