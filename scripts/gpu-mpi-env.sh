# Sourced by the GPU scripts (gpu-check.sh, gpu-multi.sh): OpenMPI for several ranks, the
# bundle's (ompi.tgz from scripts/gpu-bundle.sh, relocated with OPAL_PREFIX) when GPU_BUNDLE
# holds one, else the machine's mpirun; sets MPIRUN ("" when there is none) and the MCA
# settings of Debian's /etc/openmpi/openmpi-mca-params.conf. NCCL: DSC_NCCL_LIBRARY if set,
# else PyTorch's wheel (nvidia.nccl), else the loader's search path.
MPIRUN=""
if [ -n "${GPU_BUNDLE:-}" ] && [ -f "$GPU_BUNDLE/ompi.tgz" ]; then
  ompi_root=$(mktemp -d)
  tar xzf "$GPU_BUNDLE/ompi.tgz" -C "$ompi_root"
  # OpenMPI follows OPAL_PREFIX; PMIx (its own prefix) needs its plugin path, else it prints
  # a missing help file of /usr/lib/x86_64-linux-gnu/pmix2 (checked with the system's hidden)
  export OPAL_PREFIX="$ompi_root/ompi" PMIX_PREFIX="$ompi_root/ompi/pmix2"
  export PMIX_MCA_mca_base_component_path="$ompi_root/ompi/pmix2/lib/pmix"
  export PATH="$OPAL_PREFIX/bin:$PATH" LD_LIBRARY_PATH="$OPAL_PREFIX/deps:${LD_LIBRARY_PATH:-}"
  MPIRUN="$OPAL_PREFIX/bin/mpirun"
elif command -v mpirun >/dev/null; then
  MPIRUN=$(command -v mpirun)
fi
# what Debian's /etc/openmpi/openmpi-mca-params.conf says (the bundle cannot carry /etc), and
# mpirun as root with more ranks than cores
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader,tcp OMPI_MCA_mtl=^ofi OMPI_MCA_osc=^ucx,pt2pt
export OMPI_MCA_btl_base_warn_component_unused=0 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if [ -z "${DSC_NCCL_LIBRARY:-}" ]; then
  nccl_dir=$(${PYTHON:-python3} -c 'import nvidia.nccl as m; print(list(m.__path__)[0])' 2>/dev/null)
  if [ -n "$nccl_dir" ] && [ -e "$nccl_dir/lib/libnccl.so.2" ]; then export DSC_NCCL_LIBRARY="$nccl_dir/lib/libnccl.so.2"; fi
fi
