#!/bin/sh
# bench/gpt2_gpu under mpirun (issue 19's runs, on the CPU): 2 and 3 ranks train the same global
# batch as one rank (gpt2_gpu_world.h), at ZeRO stages 0-3, and their parameters after 6 steps
# match the 1-rank run within docs/zero.md's bf16 tolerance, ||p - p_ref|| / ||p_ref|| <= 1e-2.
# (Measured here: 0 to 1.4e-3; ranks that trained the wrong micro-batches gave 2.9e-2 to 3.4e-2.)
#   gpt2_gpu_ranks.sh GPT2_GPU MPIEXEC DEVICE
set -u
bench=$1 mpiexec=$2 dev=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
args="--device $dev --model gpt2-tiny --context 32 --batch 2 --tokens-per-step 384 --steps 6 --vocab 512"
fail=0
for z in 0 1 2 3; do
  if ! "$bench" $args --zero $z --save-params "$dir/p$z.bin" >"$dir/one.log" 2>&1; then
    echo "FAIL: 1 rank, ZeRO-$z:"; cat "$dir/one.log"; fail=1; continue
  fi
  for n in 2 3; do
    "$mpiexec" --oversubscribe -np $n "$bench" $args --zero $z --compare-params "$dir/p$z.bin" >"$dir/n.log" 2>&1
    rc=$?
    line=$(grep '^RESULT' "$dir/n.log")
    rel=$(echo "$line" | sed -n 's/.*param_rel_l2=\([0-9.e+-]*\).*/\1/p')
    echo "ZeRO-$z, $n ranks: rc $rc, ||p - p_ref|| / ||p_ref|| = ${rel:-?} ($(echo "$line" | grep -o 'ranks=[0-9]* comm=[a-z]*'))"
    if [ $rc -ne 0 ] || [ -z "$rel" ] || ! awk -v r="$rel" 'BEGIN { exit !(r <= 1e-2) }' ||
       ! echo "$line" | grep -q "ranks=$n "; then
      echo "FAIL: ZeRO-$z at $n ranks"; cat "$dir/n.log"; fail=1
    fi
  done
done
[ $fail -eq 0 ] && echo "gpt2_gpu ranks: all within 1e-2"
exit $fail
