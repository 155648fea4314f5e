# Sourced by tests/cli/train_offload_*_resume.sh (". tests/cli/offload_resume_lib.sh", the
# script's $1 being DSC): runs dsc train from the guarded device, whose bytes fault on host
# access, on bf16 configs that differ only in their zero_optimization, and checks that each
# run's step-20 line (loss, lr, gradient norms) is the reference run's, also after a resume
# from a checkpoint saved at step 10. Files live in $d, removed on exit.
set -u
DSC=$1
export DSC_DEVICE=guarded
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
a="--model gpt2-tiny --context 32 --eval-every 0 --data README.md --no-progress"
step20() { grep 'step *20/20' "$1" | cut -d'|' -f2-5; }

# offload_config NAME ZERO: writes $d/NAME.json, the shared settings (micro batch 8, bf16,
# clipping 1.0, AdamW lr 0.002, 20-step warmup-cosine) with zero_optimization {ZERO}.
offload_config() {
  printf '%s' '{"train_micro_batch_size_per_gpu": 8, "bf16": {"enabled": true}, "gradient_clipping": 1.0,
 "zero_optimization": {'"$2"'},
 "optimizer": {"type": "AdamW", "params": {"lr": 0.002}},
 "scheduler": {"type": "WarmupCosineLR", "params": {"total_num_steps": 20, "warmup_num_steps": 3}}}' > "$d/$1.json"
}

# train_reference NAME WHAT: 20 steps with $d/NAME.json into $d/NAME.log; its step-20 line
# becomes $want.
train_reference() {
  $DSC train $a --config "$d/$1.json" --steps 20 > "$d/$1.log" 2>&1 || fail "$2: $(tail -3 "$d/$1.log")"
  want=$(step20 "$d/$1.log")
  [ -n "$want" ] || fail "$2: no step-20 line: $(tail -3 "$d/$1.log")"
}

# train_same NAME WHAT: 20 steps with $d/NAME.json into $d/NAME.log; its step-20 line must be
# $want.
train_same() {
  $DSC train $a --config "$d/$1.json" --steps 20 > "$d/$1.log" 2>&1 || fail "$2: $(tail -3 "$d/$1.log")"
  [ "$(step20 "$d/$1.log")" = "$want" ] || fail "$2: step 20 is '$(step20 "$d/$1.log")', without offload '$want'"
}

# save_at_10 NAME WHAT: 10 steps with $d/NAME.json, saved to $d/ck_NAME.
save_at_10() {
  rm -rf "$d/ck_$1"
  $DSC train $a --config "$d/$1.json" --steps 10 --save "$d/ck_$1" > "$d/save.log" 2>&1 ||
    fail "$2: $(tail -3 "$d/save.log")"
}

# resume_same SAVED RESUMED WHAT: a copy of $d/ck_SAVED resumed to step 20 with
# $d/RESUMED.json; its step-20 line must be $want.
resume_same() {
  rm -rf "$d/ck"
  cp -r "$d/ck_$1" "$d/ck"
  $DSC train $a --config "$d/$2.json" --steps 20 --save "$d/ck" --resume > "$d/resume.log" 2>&1 ||
    fail "$3: $(tail -3 "$d/resume.log")"
  [ "$(step20 "$d/resume.log")" = "$want" ] || fail "$3: step 20 is '$(step20 "$d/resume.log")', want '$want'"
}
