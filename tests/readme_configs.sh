#!/bin/sh
# The configs README.md names ship in configs/ and are valid: every configs/... path the
# README mentions exists, every configs/*.json passes `dsc config check` at the world size the
# README uses it with, and the d6 config printed in the README is configs/d6.json.
# usage: readme_configs.sh DSC  (run from the source tree)
set -eu
dsc=$1
for f in $(grep -oE 'configs/[A-Za-z0-9_.-]+' README.md | sort -u); do
  [ -e "$f" ] || { echo "FAIL: README.md names $f, which is not in the tree"; exit 1; }
  echo "named in README: $f"
done
for f in configs/*.json; do
  ws=2
  [ "$f" = configs/ds_config.json ] && ws=8
  "$dsc" config check "$f" --world-size $ws > /dev/null || { echo "FAIL: dsc config check $f --world-size $ws"; exit 1; }
  echo "valid: $f (world size $ws)"
done
# The README's ```json block, whitespace removed, against the file.
shown=$(awk '/^```json/ {on = 1; next} /^```/ {on = 0} on' README.md | tr -d ' \n')
file=$(tr -d ' \n' < configs/d6.json)
[ "$shown" = "$file" ] || { echo "FAIL: the config shown in README.md differs from configs/d6.json"; exit 1; }
echo "README's d6 config = configs/d6.json"
echo README-CONFIGS-OK
