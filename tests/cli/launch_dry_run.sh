#!/bin/sh
# Issue 21: `dsc launch` takes DeepSpeed's launcher options and prints the mpirun command it
# would run (--dry-run): -np / --np / -n / --num_gpus (per node), --hostfile (every slot by
# default), --num_nodes, --include / --exclude (host lists and slot lists as rank counts;
# slot lists naming other ids than a host's first / last ones are refused), --master_addr /
# --master_port (ignored with a note), OMP_NUM_THREADS per rank when unset.
# Usage: launch_dry_run.sh DSC
set -u
unset DSC_MPIRUN
DSC=$1
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
# expect WANT_RC REGEX ARGS...: `dsc launch --dry-run ARGS... train --steps 5`; checks the exit
# status and that stdout + stderr match the extended regex (DSC written as dsc).
expect() {
  want=$1; re=$2; shift 2
  out=$("$DSC" launch --dry-run "$@" train --steps 5 2>&1); rc=$?
  out=$(echo "$out" | sed "s#$DSC#dsc#g")
  [ $rc -eq "$want" ] || fail "exit $rc, want $want: dsc launch $*: $out"
  echo "$out" | grep -Eq -- "$re" || fail "no /$re/ in the output of dsc launch $*: $out"
  echo "ok: dsc launch $* -> $(echo "$out" | head -1)"
}
printf '# a cluster\nnode1 slots=4\nnode2 slots=4  # comment\n\nnode3 slots=2\n' > "$d/hosts"
printf 'a\nb slots=2\n' > "$d/noslots"
H=$d/hosts

# The rank count: mpirun's spellings (total) and DeepSpeed's --num_gpus (per node).
export OMP_NUM_THREADS=3
expect 0 '^mpirun -np 2 dsc train --steps 5$' -np 2
expect 0 '^mpirun -np 2 dsc train --steps 5$' -n 2
expect 0 '^mpirun -np 3 dsc train --steps 5$' --np=3
expect 0 '^mpirun -np 2 dsc train --steps 5$' --num_gpus 2
expect 0 '^/usr/bin/mpirun -np 1 dsc train --steps 5$' --mpirun /usr/bin/mpirun
expect 2 'give -n N \(ranks in all\) or --num_gpus N \(ranks per node\), not both' -np 2 --num_gpus 2
expect 2 "invalid value '0' for -np" -np 0
# A hostfile: every slot (DeepSpeed's default) unless a count is given.
expect 0 "^mpirun -np 10 --hostfile $H dsc train" --hostfile "$H"
expect 0 "^mpirun -np 2 --hostfile $H dsc train" --hostfile "$H" -np 2
expect 2 'noslots:1: host a has no slots=N, so the ranks are not known' --hostfile "$d/noslots"
expect 2 'cannot read the hostfile .*/missing' --hostfile "$d/missing"
# --num_nodes: the first N hosts; --num_gpus caps each to N ranks.
expect 0 '^mpirun -np 8 --host node1:4,node2:4 dsc train' --hostfile "$H" --num_nodes 2
expect 0 '^mpirun -np 4 --host node1:2,node2:2 dsc train' --hostfile "$H" --num_nodes 2 --num_gpus 2
expect 0 '^mpirun -np 3 --host node1:4,node2:4 dsc train' --hostfile "$H" --num_nodes=2 -np 3
expect 2 "--num_nodes 4, but $H has 3 host\(s\)" --hostfile "$H" --num_nodes 4
expect 2 '--num_nodes 2, but this machine \(no --hostfile\) has 1 host' --num_nodes 2
expect 2 "--num_gpus 3, but node3 has slots=2 in $H" --hostfile "$H" --num_gpus 3
expect 2 '9 ranks asked, but the hosts selected from .* have 8 slot' --hostfile "$H" --num_nodes 2 -np 9
expect 2 'noslots:1: host a has no slots=N, which --include/--exclude/--num_nodes need' --hostfile "$d/noslots" --num_nodes 1
# --include / --exclude in DeepSpeed's syntax.
expect 0 '^mpirun -np 5 --host node2:4,node3:1 dsc train' --hostfile "$H" --include 'node2@node3:0'
expect 0 '^mpirun -np 4 --host node1:2,node3:2 dsc train' --hostfile "$H" --include 'node3@node1:0,1'
expect 0 '^mpirun -np 4 --host node2:2,node3:2 dsc train' --hostfile "$H" --exclude 'node1@node2:2,3'
expect 0 '^mpirun -np 2 --host node1:1,node2:1 dsc train' --hostfile "$H" --exclude node3 --num_gpus 1
expect 0 '^mpirun -np 4 --host node2:4 dsc train' --hostfile "$H" --exclude node1 --num_nodes 1
expect 2 "--include 'node2:1,3': dsc launch can give node2 2 rank\(s\), not pin them to these ids.*\(node2:0,1\)" \
  --hostfile "$H" --include 'node2:1,3'
expect 2 "--exclude 'node2:1': dsc launch can give node2 fewer ranks, not skip particular ids.*\(node2:3\)" \
  --hostfile "$H" --exclude 'node2:1'
expect 2 "--include names host 'node9', which is not in $H \(hosts: node1, node2, node3\)" --hostfile "$H" --include node9
expect 2 "--include 'node1:0,5': node1 has slots 0..3" --hostfile "$H" --include 'node1:0,5'
expect 2 "--include 'node1:0,0': slot 0 is listed twice" --hostfile "$H" --include 'node1:0,0'
expect 2 "--include names host 'node1' twice" --hostfile "$H" --include 'node1@node1:0'
expect 2 "--include 'node1@': items are host or host:ids" --hostfile "$H" --include 'node1@'
expect 2 "--exclude 'node1@node2@node3' leaves no host" --hostfile "$H" --exclude 'node1@node2@node3'
expect 2 '--include and --exclude cannot be used together' --hostfile "$H" --include node1 --exclude node2
expect 2 '7 ranks asked, but the hosts selected from .* have 6 slot' --hostfile "$H" --include 'node1@node3' -np 7
# Without a hostfile: this machine as localhost, slots unknown.
expect 0 '^mpirun -np 2 --host localhost:2 dsc train' --include 'localhost:0,1'
expect 0 '^mpirun -np 3 --host localhost:3 dsc train' --num_nodes 1 -np 3
expect 2 "--exclude 'localhost:1': the slots of localhost are not known \(no --hostfile\)" --exclude 'localhost:1'
expect 2 "--include names host 'node1', which is not in this machine \(no --hostfile\) \(hosts: localhost\)" --include node1
# --master_addr / --master_port: a one-line note, then the command.
expect 0 'note: --master_addr/--master_port ignored: mpirun starts the ranks and MPI connects them' \
  --master_addr 10.0.0.1 --master_port 29500 -np 2
echo "$out" | grep -Eq '^mpirun -np 2 dsc train --steps 5$' || fail "--master_addr run: no mpirun line: $out"
# The printed line reads back in a shell: words with glob or quote characters are single-quoted.
out=$("$DSC" launch --dry-run -np 2 train --data 'shards/*.bin' --name "it's" 2>&1 | sed "s#$DSC#dsc#g")
[ "$out" = "mpirun -np 2 dsc train --data 'shards/*.bin' --name 'it'\\''s'" ] || fail "quoting: $out"
eval "set -- $out"
[ "$7" = 'shards/*.bin' ] && [ "$9" = "it's" ] || fail "the printed line does not read back: $out"
echo "ok: quoted: $out"
# OMP_NUM_THREADS when unset: the CPUs here over the ranks per node (at least 1).
unset OMP_NUM_THREADS
cpus=$(nproc)
per=$((cpus / 2)); [ $per -ge 1 ] || per=1
expect 0 "^mpirun -np 2 -x OMP_NUM_THREADS=$per dsc train --steps 5\$" -np 2
per=$((cpus / 4)); [ $per -ge 1 ] || per=1
expect 0 "^mpirun -np 8 --host node1:4,node2:4 -x OMP_NUM_THREADS=$per dsc train" --hostfile "$H" --num_nodes 2
echo PASS
