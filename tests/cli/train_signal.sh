#!/bin/sh
# Issue 14 item 3: with --save, the first SIGINT / SIGTERM finishes the optimizer step, saves
# and exits 130 / 143 saying where; a second signal exits at once. Mode "one": one process.
# Mode "mpi": 2 ranks under mpirun, the signal sent to one rank, then to mpirun itself:
# every rank stops after the same step and the checkpoint is complete.
# Usage: train_signal.sh DSC one|mpi [MPIEXEC]
set -u
DSC=$1
mode=$2
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
a="--model gpt2-tiny --context 32 --eval-every 0 --data README.md --steps 1000000 --save-every 5"
# Waits (polling, at most ~120 s) until the first periodic checkpoint exists.
wait_for_latest() {
  i=0
  while [ ! -f "$1/latest" ]; do
    i=$((i + 1)); [ $i -lt 1200 ] || fail "no checkpoint appeared in $1"
    sleep 0.1
  done
}
# Waits (polling, at most ~60 s) for process $1 to end; kills it and fails if it does not.
wait_gone() {
  i=0
  while kill -0 "$1" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -ge 600 ]; then kill -KILL "$1"; fail "$2: the process did not stop"; fi
    sleep 0.1
  done
}
# The run stopped with a complete checkpoint that `latest` names and the message names.
check_saved() { # DIR LOG SIGNAME [mpirun]
  tag=$(cat "$1/latest")
  # A signalled mpirun stops forwarding its ranks' output while it waits to kill them, so with
  # slow ranks (the guarded device) rank 0's last line can be lost: there, every rank's "stop
  # requested" and a checkpoint that resumes (below) stand for it.
  if ! grep -q "stopped by $3 after step ${tag#global_step} of 1000000: saved checkpoint $1/$tag" "$2"; then
    [ "${4:-}" = mpirun ] && [ "$(grep -c 'stop requested' "$2")" -ge 2 ] ||
      fail "no 'stopped by $3 ... saved checkpoint $1/$tag' message: $(grep -a 'dsc train' "$2" | tail -3)"
  fi
  [ "${tag#global_step}" -gt 5 ] 2>/dev/null || fail "latest is $tag, want a step after the first periodic save"
  $DSC train $(echo "$a" | sed 's/--steps 1000000/--steps '$((${tag#global_step} + 1))'/') --save "$1" --resume \
    > "$d/resume.log" 2>&1 || fail "resuming from $1 failed: $(tail -2 "$d/resume.log")"
}
if [ "$mode" = one ]; then
  for sig in INT TERM; do
    $DSC train $a --save "$d/$sig" > "$d/$sig.log" 2>&1 &
    pid=$!
    wait_for_latest "$d/$sig"
    kill -$sig $pid
    wait_gone $pid SIG$sig
    wait $pid; rc=$?
    want=130; [ $sig = TERM ] && want=143
    [ $rc -eq $want ] || fail "SIG$sig: exit $rc, want $want: $(tail -2 "$d/$sig.log")"
    check_saved "$d/$sig" "$d/$sig.log" SIG$sig
  done
  # Two signals: the second exits at once, with its status, without saving again.
  $DSC train $a --save "$d/two" > "$d/two.log" 2>&1 &
  pid=$!
  wait_for_latest "$d/two"
  kill -INT $pid; kill -TERM $pid
  wait_gone $pid "SIGINT then SIGTERM"
  wait $pid; rc=$?
  # (Both may be pending together; the kernel then runs the handlers in either order.)
  [ $rc -eq 143 ] || [ $rc -eq 130 ] || fail "SIGINT then SIGTERM: exit $rc, want 130 or 143: $(tail -2 "$d/two.log")"
  grep -q "second signal: exiting at once" "$d/two.log" || fail "no message for the second signal"
  grep -q "stopped by" "$d/two.log" && fail "the second signal did not exit at once (it saved)"
else
  MPIEXEC=$3
  for target in rank mpirun; do
    # OpenMPI's mpirun, signalled, sends SIGCONT, waits odls_base_sigkill_timeout seconds (1 by
    # default), sends SIGTERM, waits as long again, then SIGKILL: 20 s give the ranks time to
    # finish the step and save on a loaded machine. mpirun drains no output while it waits, so rank 0
    # draws ~20 s of progress frames into a full pty (~190 frames fit): the frames must not block it.
    kill_timeout=20; [ $target = rank ] && kill_timeout=8 # only the signal to mpirun waits on it
    $MPIEXEC --mca odls_base_sigkill_timeout $kill_timeout -np 2 --oversubscribe $DSC train $a --save "$d/$target" \
      > "$d/$target.log" 2>&1 &
    pid=$!
    wait_for_latest "$d/$target"
    if [ $target = rank ]; then
      victim=$(ps -o pid= --ppid $pid | tail -1)
      [ -n "$victim" ] || fail "no rank process under mpirun $pid"
    else
      victim=$pid
    fi
    kill -TERM $victim
    wait_gone $pid "SIGTERM to $target"
    wait $pid
    [ "$(grep -c 'stop requested' "$d/$target.log")" -ge 1 ] || fail "signal to $target: no rank saw it"
    check_saved "$d/$target" "$d/$target.log" SIGTERM $target
    grep -q "Exit code: *143" "$d/$target.log" || [ $target = mpirun ] || fail "signal to one rank: mpirun does not report exit code 143"
  done
fi
echo PASS
