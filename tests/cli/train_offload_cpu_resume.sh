#!/bin/sh
# Issue 20: the optimizer offloaded to the host (offload_optimizer.device "cpu") from the
# guarded device, whose bytes fault on host access, at ZeRO stages 1-3 in bf16: the run's
# step-20 line (loss, lr, gradient norms) equals the run without offload; its checkpoints hold
# the same records, so a checkpoint saved at step 10 with offload resumes without it, one
# saved without offload resumes with it, and each gives that step-20 line.
# Usage: train_offload_cpu_resume.sh DSC
. "$(dirname "$0")/offload_resume_lib.sh"
for stage in 1 2 3; do
  for off in none cpu; do
    offload_config $off '"stage": '"$stage"', "offload_optimizer": {"device": "'"$off"'"}'
  done
  train_reference none "stage $stage without offload"
  train_same cpu "stage $stage with offload"
  grep -q "offloaded from guarded to the host" "$d/cpu.log" || fail "stage $stage: no offload line: $(head -5 "$d/cpu.log")"
  grep -q "optimizer offload per rank: host memory" "$d/cpu.log" || fail "stage $stage: dsc train does not print the host bytes"
  for saved in none cpu; do
    save_at_10 $saved "stage $stage: saving with offload $saved"
  done
  for saved in none cpu; do
    for resumed in none cpu; do
      resume_same $saved $resumed "stage $stage: saved with offload $saved, resumed with $resumed"
    done
  done
  echo "stage $stage: step 20 $want (offloaded, and every save/resume pair)"
done
echo PASS
