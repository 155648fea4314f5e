# dsc's build dependencies, each checked at configure time. A missing one stops the
# configuration with the header or library that is missing and the Debian package that
# provides it (scripts/deps.sh installs them all), instead of a compiler error later.
# Defines the imported targets PkgConfig::JANSSON, PkgConfig::OPENBLAS, OpenMP::OpenMP_C,
# Threads::Threads and MPI::MPI_C, and DSC_XXHASH_INCLUDE_DIR.

set(_dsc_missing "")
# dsc_dep_missing(WHAT PACKAGE): records one missing dependency.
macro(dsc_dep_missing what package)
  string(APPEND _dsc_missing "\n  - ${what}: apt-get install ${package}")
endmacro()

find_package(PkgConfig QUIET)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "dsc: missing dependency:\n  - the pkg-config program: apt-get install pkg-config\n"
                      "(bash scripts/deps.sh installs every dependency)")
endif()

pkg_check_modules(JANSSON QUIET IMPORTED_TARGET jansson)
if(NOT JANSSON_FOUND)
  dsc_dep_missing("jansson.h and libjansson.so (pkg-config module jansson)" libjansson-dev)
endif()

# OpenBLAS through pkg-config, and its cblas.h (dsc calls cblas_sgemm/cblas_dgemm).
pkg_check_modules(OPENBLAS QUIET IMPORTED_TARGET openblas)
if(NOT OPENBLAS_FOUND)
  dsc_dep_missing("cblas.h and libopenblas.so (pkg-config module openblas)" libopenblas-dev)
else()
  find_path(DSC_CBLAS_INCLUDE_DIR cblas.h HINTS ${OPENBLAS_INCLUDE_DIRS})
  if(NOT DSC_CBLAS_INCLUDE_DIR)
    dsc_dep_missing("cblas.h (OpenBLAS's C interface; looked in ${OPENBLAS_INCLUDE_DIRS} and the system)" libopenblas-dev)
  endif()
endif()

find_package(MPI QUIET COMPONENTS C)
if(NOT MPI_C_FOUND)
  dsc_dep_missing("mpi.h and libmpi.so (an MPI C library, found through mpicc)" "libopenmpi-dev openmpi-bin")
endif()

find_package(OpenMP QUIET COMPONENTS C)
if(NOT OpenMP_C_FOUND)
  if(CMAKE_C_COMPILER_ID MATCHES "Clang")
    dsc_dep_missing("omp.h and libomp.so (OpenMP for ${CMAKE_C_COMPILER_ID})" libomp-dev)
  else()
    dsc_dep_missing("omp.h and libgomp.so (OpenMP for ${CMAKE_C_COMPILER_ID})" "build-essential (gcc's libgomp)")
  endif()
endif()

find_package(Threads QUIET)
if(NOT Threads_FOUND)
  dsc_dep_missing("POSIX threads (pthread.h)" libc6-dev)
endif()

# xxhash is used header-only (XXH_INLINE_ALL in src/ckpt/checksum.c): no library to link.
find_path(DSC_XXHASH_INCLUDE_DIR xxhash.h)
if(NOT DSC_XXHASH_INCLUDE_DIR)
  dsc_dep_missing("xxhash.h (XXH3 checkpoint checksums)" libxxhash-dev)
endif()

# liburing: io_uring for the NVMe offload (src/zero/aio.c). Optional: without it the swap
# file is read and written synchronously (pread/pwrite), which the run's log says.
find_path(DSC_URING_INCLUDE_DIR liburing.h)
find_library(DSC_URING_LIBRARY uring)
if(DSC_URING_INCLUDE_DIR AND DSC_URING_LIBRARY)
  set(DSC_URING_LIBS ${DSC_URING_LIBRARY})
else()
  set(DSC_URING_LIBS "")
  message(WARNING "dsc: liburing not found (liburing.h, liburing.so): the NVMe offload will use synchronous "
                  "pread/pwrite instead of io_uring. apt-get install liburing-dev (scripts/deps.sh does) and configure again.")
endif()

if(_dsc_missing)
  message(FATAL_ERROR "dsc: missing dependencies:${_dsc_missing}\n"
                      "(bash scripts/deps.sh installs every dependency, then configure again)")
endif()
