#!/bin/sh
# Issue 14 item 1: `dsc zero-to-fp32` never writes into the checkpoint it reads (range file,
# manifest, `latest`, the directory, through a symbolic link, or as --hf-config), and a
# failed write (here a file-size limit standing in for a full disk) leaves the old output
# untouched. Usage: zero_to_fp32_safety.sh DSC  (run from the source tree).
set -u
DSC=$1
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
a="--model gpt2-tiny --context 16 --eval-every 0 --data README.md"
$DSC train $a --steps 2 --save "$d/ck" >/dev/null 2>&1 || fail "training the checkpoint"
sums() { (cd "$d/ck" && find . -type f | sort | xargs sha256sum); }
before=$(sums)
ck="$d/ck/global_step2"
ln -s "$ck/rank00000.safetensors" "$d/link.safetensors"
for out in "$ck/rank00000.safetensors" "$ck/manifest.json" "$ck/manifest.xxh3" "$d/ck/latest" "$ck" \
           "$ck/new.safetensors" "$d/link.safetensors" "$d/ck/./global_step2/../latest"; do
  msg=$($DSC zero-to-fp32 "$d/ck" "$out" 2>&1); rc=$?
  [ $rc -eq 1 ] || fail "output $out: exit $rc, want 1 ($msg)"
  echo "$msg" | grep -q "refusing to write" || fail "output $out: no refusal in: $msg"
done
msg=$($DSC zero-to-fp32 "$d/ck" "$d/out.safetensors" --hf-config "$d/ck/latest" 2>&1) && fail "--hf-config latest accepted"
echo "$msg" | grep -q "refusing to write '$d/ck/latest'" || fail "--hf-config latest: $msg"
[ ! -e "$d/out.safetensors" ] || fail "the output was written although --hf-config was refused"
[ "$(sums)" = "$before" ] || fail "the checkpoint changed"
$DSC train $a --steps 3 --save "$d/ck" --resume >/dev/null 2>&1 || fail "resuming after the refused exports"
# A failed write keeps the previous output (the file-size limit makes write() fail, EFBIG).
echo OLD > "$d/old.safetensors"
msg=$(sh -c "ulimit -f 16; trap '' XFSZ; exec $DSC zero-to-fp32 '$d/ck' '$d/old.safetensors'" 2>&1) && fail "the write succeeded under ulimit -f 16"
echo "$msg" | grep -q "cannot write '$d/old.safetensors'" || fail "failed write: $msg"
[ "$(cat "$d/old.safetensors")" = OLD ] || fail "a failed write destroyed the previous output"
ls -A "$d" | grep -q tmp && fail "a temporary file was left: $(ls -A "$d")"
# A successful one replaces it, and the GPT2Config beside it.
$DSC zero-to-fp32 "$d/ck" "$d/old.safetensors" --hf-config "$d/config.json" >/dev/null || fail "the export failed"
[ "$(head -c 3 "$d/old.safetensors")" != OLD ] || fail "the export did not replace the old file"
grep -q '"n_head": 4' "$d/config.json" || fail "config.json: $(cat "$d/config.json")"
echo PASS
