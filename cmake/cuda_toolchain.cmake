# The CUDA toolchain, found before any target is made (every target takes its
# CUDA_ARCHITECTURES from the variable when it is created): option DSC_CUDA, on by default when
# nvcc and cuBLASLt are found; code for sm_90 (H100/H200) plus compute_90 PTX. The targets are
# in cmake/cuda.cmake.
include(CheckLanguage)
check_language(CUDA)
set(DSC_CUDA_FOUND OFF)
if(CMAKE_CUDA_COMPILER)
  find_package(CUDAToolkit QUIET)
  if(CUDAToolkit_FOUND AND TARGET CUDA::cublasLt)
    set(DSC_CUDA_FOUND ON)
  endif()
endif()
option(DSC_CUDA "Build the CUDA kernels (needs nvcc and cuBLASLt)" ${DSC_CUDA_FOUND})

if(DSC_CUDA)
  if(NOT CMAKE_CUDA_COMPILER)
    message(FATAL_ERROR "DSC_CUDA=ON but no CUDA compiler (nvcc) was found")
  endif()
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES "90-real;90-virtual")
  endif()
  enable_language(CUDA)
  enable_language(CXX) # libdsc links as C++: the nvcc objects need the C++ runtime
  find_package(CUDAToolkit REQUIRED)
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
endif()
