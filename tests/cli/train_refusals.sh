#!/bin/sh
# Issue 14 items 6, 7, 8: wrong data, bad flags and odd files are refused with a message
# naming the file and what differs, never trained on, ignored or hung on; a user's directory
# is never deleted. Mode "mpi": a shard checkpoint of 2 ranks resumed on 1 names the
# loader's reason. Usage: train_refusals.sh DSC one|mpi [MPIEXEC]
set -u
DSC=$1
mode=$2
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
# expect WANT_RC REGEX CMD...: runs CMD (at most 60 s: nothing may block), checks its exit
# status and that its output matches REGEX (grep -E).
expect() {
  want=$1; re=$2; shift 2
  out=$(timeout 60 "$@" 2>&1); rc=$?
  [ $rc -ne 124 ] || fail "blocked (killed after 60 s): $*"
  [ $rc -eq "$want" ] || fail "exit $rc, want $want: $*: $(echo "$out" | tail -3)"
  echo "$out" | grep -Eq -- "$re" || fail "no /$re/ in the output of: $*: $(echo "$out" | tail -3)"
}
small="--model gpt2-tiny --context 16 --eval-every 0"
# A token shard as llm.c writes it: 256 int32 header (magic, version, count), uint16 tokens.
shard() { # FILE MAX_TOKEN N
  python3 -c "import struct,sys; n=int(sys.argv[3]); m=int(sys.argv[2])
open(sys.argv[1],'wb').write(struct.pack('<256i',20240520,1,n,*([0]*253))+struct.pack('<%dH'%n,*[(i*7)%(m+1) for i in range(n)]))" "$@"
}
if [ "$mode" = mpi ]; then
  MPIEXEC=$3
  mkdir "$d/sh" && shard "$d/sh/train_000.bin" 63 20000 && shard "$d/sh/val_000.bin" 63 4000 || fail "writing shards"
  $MPIEXEC -np 2 --oversubscribe $DSC train $small --vocab 64 --data "$d/sh/train_*.bin" --steps 2 --save "$d/ck" \
    > "$d/mpi.log" 2>&1 || fail "2-rank shard run: $(tail -3 "$d/mpi.log")"
  expect 1 "data position in the checkpoint in $d/ck does not fit these shards and ranks: sampler: .*over 2 ranks.* over 1 ranks" \
    $DSC train $small --vocab 64 --data "$d/sh/train_*.bin" --steps 3 --save "$d/ck" --resume
  echo PASS
  exit 0
fi

# ---- item 6: wrong data -----------------------------------------------------------------
printf '\210\330\064\001 tokens, not text' > "$d/tokens.txt"      # starts with the shard magic
expect 1 "$d/tokens.txt is an llm.c token shard" $DSC train $small --data "$d/tokens.txt" --steps 1
expect 2 "--data $d/a.bin is an llm.c token shard \(.bin\) among 2" $DSC train --data "$d/a.bin" --data "$d/b.BIN"
expect 2 "--data $d/b.BIN is an llm.c token shard" $DSC train --data README.md --data "$d/b.BIN"
# Resuming on another text with as many distinct characters: refused, checkpoint untouched.
python3 -c "open('$d/abc.txt','w').write('abc\n' * 600); open('$d/xyz.txt','w').write('xyz\n' * 600)"
$DSC train $small --data "$d/abc.txt" --steps 2 --save "$d/ck6" > /dev/null 2>&1 || fail "training on abc.txt"
sum=$(cat "$d"/ck6/global_step2/* | cksum)
expect 1 "checkpoint in $d/ck6 was trained on text whose character 1 is byte 97, but the --data text's is byte 120" \
  $DSC train $small --data "$d/xyz.txt" --steps 3 --save "$d/ck6" --resume
[ "$(cat "$d/ck6/latest")" = global_step2 ] && [ "$(cat "$d"/ck6/global_step2/* | cksum)" = "$sum" ] ||
  fail "the refused resume changed the checkpoint"
# Validation shards with tokens outside the vocabulary: refused before training, file named.
mkdir "$d/sh" && shard "$d/sh/train_000.bin" 63 20000 && shard "$d/sh/val_000.bin" 200 4000 || fail "writing shards"
expect 1 "--val-data: $d/sh/val_000.bin: token [0-9]+ at position [0-9]+ .* outside the model's vocabulary \(vocab_size 64\)" \
  $DSC train $small --vocab 64 --data "$d/sh/train_*.bin" --val-data "$d/sh/val_*.bin" --steps 1

# ---- item 7: messages -------------------------------------------------------------------
echo '{"train_batch_size": 1000000000, "optimizer": {"type": "AdamW", "params": {"lr": 0.001}}}' > "$d/huge.json"
ASAN_OPTIONS="${ASAN_OPTIONS:-}:allocator_may_return_null=1" \
  expect 1 "out of memory for one micro batch of 1000000000 x 16 tokens" $DSC train $small --config "$d/huge.json" --steps 1
expect 2 "unknown option --bogus" $DSC train --bogus
expect 2 "unknown option --bogus" $DSC train --steps 1 --bogus
expect 2 "unexpected argument 'stray'" $DSC train stray
expect 2 "--steps needs a value" $DSC train --steps
expect 1 "$d is a directory, not a text file" $DSC train --data "$d"
# A directory where a range file should be.
$DSC train $small --data README.md --steps 2 --save "$d/ck7" > /dev/null 2>&1 || fail "training ck7"
rm "$d/ck7/global_step2/rank00000.safetensors" && mkdir "$d/ck7/global_step2/rank00000.safetensors"
expect 1 "rank00000.safetensors' is a directory, not a file" $DSC train $small --data README.md --steps 3 --save "$d/ck7" --resume
# dsc plot quotes a bad csv line escaped, never its raw bytes.
mkdir "$d/run" && printf 'step,value\n1,\033[31mred\001\n' > "$d/run/Train_Samples_train_loss.csv"
expect 1 'got "1,\\x1b\[31mred\\x01"' $DSC plot "$d/run"
$DSC plot "$d/run" 2>&1 | od -c | grep -q '033' && fail "dsc plot printed a raw escape byte"

# ---- item 8: minor ----------------------------------------------------------------------
mkfifo "$d/fifo"
expect 1 "$d/fifo is a FIFO \(named pipe\), not a text file" $DSC train --data "$d/fifo"
$DSC train $small --data README.md --steps 6 --save "$d/ck8" > /dev/null 2>&1 || fail "training ck8"
expect 1 "--steps 3, but the checkpoint in $d/ck8 is already at step 6: nothing to train" \
  $DSC train $small --data README.md --steps 3 --save "$d/ck8" --resume
expect 0 "resumed from $d/ck8 at step 6, which is --steps: nothing left to train" \
  $DSC train $small --data README.md --steps 6 --save "$d/ck8" --resume
mv "$d/ck8/latest" "$d/latest.saved" && mkfifo "$d/ck8/latest"
expect 1 "$d/ck8/latest': it is a FIFO, socket or device, not a regular file" \
  $DSC train $small --data README.md --steps 7 --save "$d/ck8" --resume
rm "$d/ck8/latest" && mv "$d/latest.saved" "$d/ck8/latest"
expect 2 "--vocab applies to llm.c token shards" $DSC train --data README.md --vocab 300
expect 2 "--val-data applies to llm.c token shards" $DSC train --data README.md --val-data "$d/sh/val_*.bin"
expect 0 "GPT 1 layers, 6 heads, width 384" $DSC train --model d6 --layers 1 --context 8 --steps 1 --eval-every 0 --data README.md
expect 0 "GPT 1 layers, 6 heads, width 384" $DSC train --layers 1 --model d6 --context 8 --steps 1 --eval-every 0 --data README.md
# A user's directory named like the tag a save would write is never deleted.
mkdir -p "$d/ck9/global_step2" && echo precious > "$d/ck9/global_step2/notes.txt"
expect 1 "refusing to save a checkpoint over '$d/ck9/global_step2': the directory exists and is not a dsc checkpoint" \
  $DSC train $small --data README.md --steps 2 --save "$d/ck9"
[ "$(cat "$d/ck9/global_step2/notes.txt" 2>/dev/null)" = precious ] || fail "the user's directory was deleted"
echo PASS
