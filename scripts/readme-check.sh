#!/usr/bin/env bash
# Runs every command of README.md, in order, as a reader would type them: each line of each
# ```sh block, in one bash session (so `export` lines carry over), stopping at the first
# failure. Run it on a fresh machine from a clean clone, e.g.
#   scripts/fresh-root.sh -- bash scripts/readme-check.sh
# --skip REGEX  leaves out the commands matching REGEX (e.g. --skip '^make test' when the
#               suite already ran); each skipped command is printed.
# --from REGEX  starts at the first command matching REGEX (the `export` lines before it still
#               run), to finish a check that stopped there.
# As root (the fresh root, CI), OpenMPI refuses to start without --allow-run-as-root, as
# the README says; this script sets OpenMPI's environment equivalent for the mpirun lines.
set -euo pipefail
cd "$(dirname "$0")/.."
skip="" from=""
while [ $# -gt 0 ]; do
  case "$1" in
    --skip) skip=$2; shift 2 ;;
    --from) from=$2; shift 2 ;;
    *) echo "readme-check.sh: unknown option '$1' (--skip REGEX, --from REGEX)" >&2; exit 2 ;;
  esac
done
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi

script=$(mktemp /tmp/readme-commands.XXXXXX.sh)
trap 'rm -f "$script"' EXIT
{
  echo 'set -e'
  echo 'readme_t0=$(date +%s)'
  awk -v skip="$skip" -v from="$from" '
    BEGIN { started = (from == "") }
    /^```sh[[:space:]]*$/ { in_sh = 1; next }
    /^```/ { in_sh = 0; next }
    in_sh && NF > 0 {
      cmd = $0
      q = cmd; gsub(/\047/, "\047\\\047\047", q)   # single-quote the command for echo
      if (!started && cmd ~ from) started = 1
      if ((!started && cmd !~ /^export /) || (skip != "" && cmd ~ skip)) { print "echo \047readme: skipped: " q "\047"; next }
      print "echo \047readme: $ " q "\047"
      print "t=$(date +%s)"
      print cmd
      print "echo \"readme: ok ($(( $(date +%s) - t )) s)\""
    }' README.md
  echo 'echo "readme: every command ran, $(( $(date +%s) - readme_t0 )) s in all"'
} > "$script"
n=$(grep -c "^echo 'readme: \\$ " "$script" || true)
echo "readme-check: $n commands from README.md"
[ "${READMECHECK_PRINT:-0}" = 1 ] && { cat "$script"; exit 0; }
bash "$script"
