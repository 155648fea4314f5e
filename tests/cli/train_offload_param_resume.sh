#!/bin/sh
# Issue 20: the parameter partition offloaded to host memory (offload_param.device "cpu", ZeRO
# stage 3) from the guarded device, whose bytes fault on host access, in bf16, without and with
# the optimizer offload: the run's step-20 line (loss, lr, gradient norms) equals the run without
# offload; a checkpoint saved at step 10 with the offload resumes with it, and one saved without
# resumes with it (and back), each giving that step-20 line.
# Usage: train_offload_param_resume.sh DSC
. "$(dirname "$0")/offload_resume_lib.sh"
conf() { # name, offload_param device, offload_optimizer device
  offload_config $1 '"stage": 3, "stage3_param_persistence_threshold": 0,
   "offload_param": {"device": "'"$2"'"}, "offload_optimizer": {"device": "'"$3"'"}'
}
conf none none none
conf param cpu none
conf both cpu cpu
train_reference none "without offload"
for c in param both; do
  train_same $c $c
  grep -q "parameter partition (.*) offloaded from guarded to host memory" "$d/$c.log" || fail "$c: no offload line: $(head -5 "$d/$c.log")"
done
grep -q "parameter offload per rank: host memory" "$d/param.log" || fail "dsc train does not print the partition's host bytes"
for saved in none param both; do
  save_at_10 $saved "saving with $saved"
done
for pair in none:param param:param param:none both:both both:param none:both; do
  resume_same ${pair%%:*} ${pair##*:} "saved with ${pair%%:*}, resumed with ${pair##*:}"
done
echo "step 20 $want (offload_param, with offload_optimizer, and every save/resume pair)"
echo PASS
