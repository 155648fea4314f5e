# Sourced by tests/cli/train_*nvme_kill.sh (after they define fail() and $d):
#   train_then_kill LOG ARGS...   starts `$DSC train ARGS... --save $d/ck --save-every 3` in the
# background (output in LOG), waits (at most 120 s) for its first checkpoint, kills it with
# SIGKILL and checks that it died of that signal before its last step; sets $tag to the
# checkpoint it left (global_stepN, N < 20). Fails when the run ends first or saves nothing.
train_then_kill() {
  log=$1
  shift
  $DSC train "$@" --save "$d/ck" --save-every 3 > "$log" 2>&1 &
  pid=$!
  i=0
  while [ ! -f "$d/ck/latest" ]; do
    i=$((i + 1)); [ $i -lt 1200 ] || { kill -KILL $pid; fail "no checkpoint appeared"; }
    kill -0 $pid 2>/dev/null || fail "the run ended before its first checkpoint: $(tail -3 "$log")"
    sleep 0.1
  done
  kill -KILL $pid
  wait $pid; rc=$?
  [ $rc -eq 137 ] || fail "the run was not killed by SIGKILL (exit $rc): it ended first; $(tail -2 "$log")"
  tag=$(cat "$d/ck/latest")
  [ "${tag#global_step}" -lt 20 ] || fail "latest is $tag: the kill came after the last step"
}
