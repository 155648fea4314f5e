#!/usr/bin/env bash
# Runs a command on a fresh Debian 12 machine, as a new user would meet it: a minimal
# debootstrap root (build-essential, cmake, git, ca-certificates, python3 and nothing else),
# /proc, /sys and /dev mounted, a clone of this repository's committed HEAD at /src/dsc,
# and the command run there as root under `env -i` (a clean environment). Uncommitted
# changes are not in the clone: what is checked is what a `git clone` gives.
#
#   scripts/fresh-root.sh [--root DIR] [--keep] [--mirror URL] -- COMMAND...
#   scripts/fresh-root.sh -- make train          # what .ci/run does
#
# --root DIR   build the root in DIR (default: a new directory under /var/tmp); DIR must
#              not exist or be empty, unless it already holds a root made by --keep, which is
#              then reused (a new clone each run; mainly for developing this script)
# --keep       leave the root in place (mounts are always undone)
# --mirror URL the Debian mirror (default: this machine's, from /etc/apt/sources.list*)
# CI=true is passed through to the command; nothing else of the caller's environment is.
# Needs root (debootstrap, chroot, mount) and the debootstrap package (scripts/deps.sh ci).
# Exits with the command's status.
set -euo pipefail

root="" keep=0 mirror=""
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --mirror) mirror=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "fresh-root.sh: unknown option '$1' (usage: fresh-root.sh [--root DIR] [--keep] [--mirror URL] -- COMMAND...)" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "fresh-root.sh: no command given (usage: fresh-root.sh [options] -- COMMAND...)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "fresh-root.sh: needs root (debootstrap, chroot, mount)" >&2; exit 2; }
command -v debootstrap >/dev/null || { echo "fresh-root.sh: debootstrap is missing: apt-get install debootstrap (or bash scripts/deps.sh ci)" >&2; exit 2; }

repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
commit=$(git -C "$repo" rev-parse HEAD)

# The mirror this machine uses (deb822 "URIs:" or one-line "deb URL bookworm"), so the root
# gets the same package versions the development machine has.
if [ -z "$mirror" ]; then
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
           grep -v '^[[:space:]]*#' | grep -oE '(https?://[^ ]+/debian)/?( |$)' | grep -v security | head -n1 | tr -d ' ' || true)
  mirror=${mirror%/}
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
fi
security=${mirror%/debian}/debian-security

made_root=0
if [ -z "$root" ]; then
  root=$(mktemp -d /var/tmp/dsc-fresh-root.XXXXXX)
  made_root=1
fi
mkdir -p "$root"
root=$(cd "$root" && pwd -P)
[ "$root" != / ] || { echo "fresh-root.sh: refusing to use / as the root" >&2; exit 2; }

mounted=()
cleanup() {
  local rc=$? m i
  # Undo the mounts innermost first; never delete a root that still has anything mounted.
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    m=${mounted[i]}
    umount -R "$m" 2>/dev/null || umount -R -l "$m" 2>/dev/null || true
  done
  # Anything else still mounted below the root (debootstrap interrupted while it had /proc).
  awk -v r="$root/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  if [ "$keep" = 0 ]; then
    if grep -q " $root/" /proc/mounts; then
      echo "fresh-root.sh: something is still mounted under $root; not deleting it" >&2
    else
      rm -rf --one-file-system "$root"
      rm -f "$root.debootstrap.log"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t0=$(date +%s)
if [ ! -x "$root/usr/bin/apt-get" ]; then
  [ -z "$(ls -A "$root")" ] || { echo "fresh-root.sh: $root is neither empty nor a root made before" >&2; exit 2; }
  echo "fresh-root.sh: debootstrap bookworm into $root from $mirror"
  debootstrap --variant=minbase --include=build-essential,cmake,git,ca-certificates,python3 \
    bookworm "$root" "$mirror" > "$root.debootstrap.log" 2>&1 ||
    { tail -n 30 "$root.debootstrap.log" >&2; echo "fresh-root.sh: debootstrap failed (log: $root.debootstrap.log)" >&2; exit 1; }
  rm -f "$root.debootstrap.log"
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-security main\n' \
    "$mirror" "$mirror" "$security" > "$root/etc/apt/sources.list"
  echo "fresh-root.sh: root ready after $(( $(date +%s) - t0 )) s"
fi
cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true

mount -t proc proc "$root/proc"
mounted+=("$root/proc")
mount -t sysfs sysfs "$root/sys"
mounted+=("$root/sys")
mount --rbind /dev "$root/dev"
mount --make-rslave "$root/dev"
mounted+=("$root/dev")

# The committed HEAD, cloned as a user would: `git clone` then check out that commit.
rm -rf "$root/src/dsc"
mkdir -p "$root/src"
git init -q "$root/src/dsc"
git -C "$root/src/dsc" fetch -q "$repo" "$commit"
git -C "$root/src/dsc" checkout -q --detach FETCH_HEAD
echo "fresh-root.sh: /src/dsc is $(git -C "$root/src/dsc" log -1 --format='%h %s' | cut -c1-100)"

# Shell-quote the command so `fresh-root.sh -- make train` and `-- sh -c '...'` both work.
cmd=$(printf '%q ' "$@")
echo "fresh-root.sh: running in the root: $cmd"
set +e
chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb CI="${CI:-}" \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  /bin/bash -c "cd /src/dsc && $cmd"
rc=$?
set -e
echo "fresh-root.sh: the command exited $rc after $(( $(date +%s) - t0 )) s in all"
exit "$rc"
