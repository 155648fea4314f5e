#!/usr/bin/env bash
# Sourced by the GPU scripts (gpu-step.sh, gpu-big.sh, gpu-rows.sh) with D set to the bundle
# (scripts/gpu-bundle.sh DIR) and L to the log folder: unpacks the programs and their libraries
# into a fresh folder U and defines
#   LIBS       the library path for dsc's programs: the bundle's libraries, the CUDA toolkit's,
#              and cuDNN from PyTorch's wheel (nvidia/*/lib) where the machine has one, since
#              cuDNN's attention is the CUDA default and the machine's loader path lacks it
#   CALLER_LD  the caller's own library path (PyTorch runs with it, not with LIBS)
#   r NAME SECONDS COMMAND...  runs one program in U under `timeout` (library path: LIBS, then
#              the path at the time of the call), its output in L/NAME.log,
#              "NAME rc=RC S s" appended to L/summary.txt; returns the program's status.
#              OMP_NUM_THREADS is R_OMP (default 8).
U=$(mktemp -d)
bash "$D/gpu-unpack.sh" "$D/bin.tar.xz" "$U" && tar xzf "$D/lib.tgz" -C "$U"
NV=$("${PYTHON:-python3}" -c 'import glob, site; print(":".join(sorted(glob.glob(site.getsitepackages()[0] + "/nvidia/*/lib"))))' 2>/dev/null)
LIBS=$U/lib:/usr/local/cuda/lib64${NV:+:$NV}
CALLER_LD=${LD_LIBRARY_PATH-}
r() {
  local n=$1 t=$2; shift 2
  local t0 rc; t0=$(date +%s)
  (cd "$U" && env LD_LIBRARY_PATH="$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" OMP_NUM_THREADS="${R_OMP:-8}" OPENBLAS_NUM_THREADS=1 \
    timeout "$t" "$@") >"$L/$n.log" 2>&1
  rc=$?
  echo "$n rc=$rc $(($(date +%s) - t0)) s" | tee -a "$L/summary.txt"
  return $rc
}
