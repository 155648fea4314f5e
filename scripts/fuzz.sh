#!/usr/bin/env bash
# Runs every libFuzzer target built in $1 either for N runs ("runs N") or N seconds
# ("seconds N"), with its seed corpus from tests/fuzz/corpus/<target>/ when present.
set -euo pipefail
build=$1 mode=$2 amount=$3
shopt -s nullglob
targets=("$build"/fuzz/fuzz_*)
if [ ${#targets[@]} -eq 0 ]; then echo "fuzz: no fuzz targets built"; exit 0; fi
for t in "${targets[@]}"; do
  name=$(basename "$t")
  corpus_src="tests/fuzz/corpus/${name#fuzz_}"
  work=$(mktemp -d)
  [ -d "$corpus_src" ] && cp -r "$corpus_src"/. "$work"/
  if [ "$mode" = runs ]; then limit=(-runs="$amount"); else limit=(-max_total_time="$amount"); fi
  echo "fuzz: $name (${mode} ${amount})"
  log="$work.log"
  if ! "$t" "${limit[@]}" -print_final_stats=1 -max_len=4096 -artifact_prefix="$work.crash-" "$work" >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz: $name FAILED (artifacts: $work.crash-*)"
    exit 1
  fi
  grep -E 'stat::number_of_executed_units' "$log" || true
  rm -f "$log"
  rm -rf "$work"
done
