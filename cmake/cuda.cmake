# The CUDA device (src/ops/cuda/): with DSC_CUDA (cmake/cuda_toolchain.cmake) its kernels
# (sm_90 machine code plus compute_90 PTX) and host side go into libdsc, with the tests
# tests/cuda/test_*.c (label `cuda`; exit 77 = skipped without a GPU) and the kernel
# microbenchmark bench/cuda/bench_cuda_kernels.c; without it, cuda:N is refused. Machines
# without a GPU (CI) compile and link all of it.

# The CUDA device's host side (its table: memory, copies, events, and the op, optimizer and
# mixed-precision entries), plain C over cuda_kernels.h. The same objects go into libdsc with
# the real kernels (DSC_CUDA) and into the test library dsc_emu with the emulated ones.
set(DSC_CUDA_HOST_SOURCES ${PROJECT_SOURCE_DIR}/src/ops/cuda/cuda_device.c
    ${PROJECT_SOURCE_DIR}/src/ops/cuda/cuda_backend.c ${PROJECT_SOURCE_DIR}/src/ops/cuda/cuda_optim_amp.c
    ${PROJECT_SOURCE_DIR}/src/ops/cuda/cuda_fused.c)
add_library(dsc_cuda_host OBJECT ${DSC_CUDA_HOST_SOURCES})
target_include_directories(dsc_cuda_host PRIVATE ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(dsc_cuda_host PRIVATE dsc_objects)

if(DSC_CUDA)
  file(GLOB DSC_CUDA_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/ops/cuda/*.cu)
  add_library(dsc_cuda OBJECT ${DSC_CUDA_SOURCES})
  # The directory's C warning flags are not nvcc options: replace them for this target.
  set_property(TARGET dsc_cuda PROPERTY COMPILE_OPTIONS
               $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wno-unused-parameter>)
  # Element-wise, mixed-precision and optimizer kernels round after every operation (no
  # fused multiply-add), as the CPU kernels do: their f32 results are the CPU's bits.
  set_source_files_properties(${PROJECT_SOURCE_DIR}/src/ops/cuda/cuda_elementwise.cu
                              ${PROJECT_SOURCE_DIR}/src/ops/cuda/cuda_amp.cu
                              ${PROJECT_SOURCE_DIR}/src/ops/cuda/cuda_optim.cu
                              PROPERTIES COMPILE_OPTIONS "-fmad=false")
  set_target_properties(dsc_cuda PROPERTIES CUDA_SEPARABLE_COMPILATION OFF POSITION_INDEPENDENT_CODE ON)
  target_include_directories(dsc_cuda PRIVATE ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(dsc_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-lineinfo>)
  # libdsc carries the CUDA device: the kernels, the runtime (static) and cuBLASLt (shared).
  # (libdsc.so keeps them private; libdsc.a hands them on: find_package(dsc) finds the
  # toolkit, pkg-config --static lists them.)
  foreach(lib dsc dsc_shared)
    target_sources(${lib} PRIVATE $<TARGET_OBJECTS:dsc_cuda> $<TARGET_OBJECTS:dsc_cuda_host>)
    set_target_properties(${lib} PROPERTIES LINKER_LANGUAGE CXX)
  endforeach()
  target_link_libraries(dsc_shared PRIVATE CUDA::cudart_static CUDA::cublasLt)
  target_link_libraries(dsc PUBLIC CUDA::cudart_static CUDA::cublasLt stdc++) # nvcc objects need the C++ runtime
else()
  add_library(dsc_cuda_absent OBJECT ${PROJECT_SOURCE_DIR}/src/ops/cuda/cuda_absent.c)
  target_include_directories(dsc_cuda_absent PRIVATE ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(dsc_cuda_absent PRIVATE dsc_objects)
  foreach(lib dsc dsc_shared)
    target_sources(${lib} PRIVATE $<TARGET_OBJECTS:dsc_cuda_absent>)
  endforeach()
endif()

if(DSC_CUDA)
  if(DSC_BUILD_TESTS)
    file(GLOB DSC_CUDA_TESTS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/cuda/test_*.c)
    foreach(src ${DSC_CUDA_TESTS})
      get_filename_component(name ${src} NAME_WE)
      add_executable(${name} ${src})
      target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src)
      target_link_libraries(${name} PRIVATE dsc)
      add_test(NAME ${name} COMMAND ${name} WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
      set_tests_properties(${name} PROPERTIES LABELS cuda SKIP_RETURN_CODE 77 TIMEOUT 600
                           ENVIRONMENT "OMP_NUM_THREADS=4;OPENBLAS_NUM_THREADS=1")
    endforeach()
  endif()
  add_executable(bench_cuda_kernels ${PROJECT_SOURCE_DIR}/bench/cuda/bench_cuda_kernels.c)
  set_target_properties(bench_cuda_kernels PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
  target_include_directories(bench_cuda_kernels PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR})
  target_link_libraries(bench_cuda_kernels PRIVATE dsc)
  add_executable(bench_cuda_rowwise ${PROJECT_SOURCE_DIR}/bench/cuda/bench_cuda_rowwise.c)
  set_target_properties(bench_cuda_rowwise PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
  target_include_directories(bench_cuda_rowwise PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR})
  target_link_libraries(bench_cuda_rowwise PRIVATE dsc)
  add_executable(bench_attention ${PROJECT_SOURCE_DIR}/bench/cuda/bench_attention.c) # attention variants
  set_target_properties(bench_attention PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
  target_include_directories(bench_attention PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR})
  target_link_libraries(bench_attention PRIVATE dsc)
  add_executable(bench_gemm_gpt ${PROJECT_SOURCE_DIR}/bench/cuda/bench_gemm_gpt.c)
  set_target_properties(bench_gemm_gpt PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
  target_include_directories(bench_gemm_gpt PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(bench_gemm_gpt PRIVATE dsc)
endif()
message(STATUS "dsc: CUDA kernels ${DSC_CUDA} (nvcc ${CMAKE_CUDA_COMPILER_VERSION})")

# The same kernels on the CPU emulator (tests/cuda/emu/cuda_emu.h): the .cu sources compiled by
# the host C++ compiler, so the kernels' logic (indexing, barriers, shuffles, summation
# orders, the bit-for-bit claims) is tested on every machine, CI included. gemm (cuBLASLt) is
# not emulated. Tests test_cuda_*_emu, label cuda-emu.
set(DSC_CUDA_EMU_DEFAULT OFF)
check_language(CXX)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64" AND DSC_BUILD_TESTS AND CMAKE_CXX_COMPILER)
  set(DSC_CUDA_EMU_DEFAULT ON)
endif()
option(DSC_CUDA_EMU "Test the CUDA kernels on the CPU emulator (x86-64)" ${DSC_CUDA_EMU_DEFAULT})
if(DSC_CUDA_EMU)
  enable_language(CXX)
  set(DSC_CUDA_EMU_SOURCES ${PROJECT_SOURCE_DIR}/tests/cuda/emu/cuda_emu_runtime.cpp)
  file(GLOB DSC_CUDA_KERNEL_FILES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/ops/cuda/*.cu)
  list(FILTER DSC_CUDA_KERNEL_FILES EXCLUDE REGEX "/cuda_runtime\\.cu$") # cuBLASLt and the CUDA runtime
  foreach(cu ${DSC_CUDA_KERNEL_FILES})
    get_filename_component(name ${cu} NAME_WE)
    file(GENERATE OUTPUT ${CMAKE_BINARY_DIR}/cuda_emu/emu_${name}.cpp CONTENT "#include \"ops/cuda/${name}.cu\"\n")
    list(APPEND DSC_CUDA_EMU_SOURCES ${CMAKE_BINARY_DIR}/cuda_emu/emu_${name}.cpp)
  endforeach()
  # dsc_emu: the whole library with the CUDA device on the emulated kernels (tests only), so
  # the engine runs on `cuda:0` on any x86-64 machine.
  add_library(dsc_emu STATIC $<TARGET_OBJECTS:dsc_objects> $<TARGET_OBJECTS:dsc_cuda_host> ${DSC_CUDA_EMU_SOURCES})
  set_property(TARGET dsc_emu PROPERTY COMPILE_OPTIONS $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wno-unused-parameter
               -Wno-unused-function -ffp-contract=off>)
  if(DSC_SANITIZE) # the emulated kernels under ASan: out-of-bounds device accesses are caught
    target_compile_options(dsc_emu PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=address -fno-omit-frame-pointer>)
  endif()
  set_target_properties(dsc_emu PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON)
  target_compile_definitions(dsc_emu PRIVATE DSC_CUDA_EMU)
  target_include_directories(dsc_emu PUBLIC ${PROJECT_SOURCE_DIR}/include PRIVATE ${PROJECT_SOURCE_DIR}/src
                             ${PROJECT_SOURCE_DIR}/tests/cuda/emu)
  target_link_libraries(dsc_emu PUBLIC PkgConfig::JANSSON PkgConfig::OPENBLAS OpenMP::OpenMP_C Threads::Threads
                        MPI::MPI_C m stdc++ ${DSC_URING_LIBS})
  file(GLOB DSC_CUDA_EMU_TESTS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/cuda/test_*.c)
  foreach(src ${DSC_CUDA_EMU_TESTS})
    get_filename_component(name ${src} NAME_WE)
    add_executable(${name}_emu ${src})
    target_include_directories(${name}_emu PRIVATE ${PROJECT_SOURCE_DIR}/src)
    target_compile_definitions(${name}_emu PRIVATE DSC_CUDA_EMU)
    target_link_libraries(${name}_emu PRIVATE dsc_emu)
    add_test(NAME ${name}_emu COMMAND ${name}_emu WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
    set(emu_env "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive;OPENBLAS_NUM_THREADS=1")
    if(DSC_SANITIZE)
      list(APPEND emu_env "DSC_EMU_ENGINE_SMALL=1") # test_cuda_engine: the smaller set
    endif()
    set_tests_properties(${name}_emu PROPERTIES LABELS cuda-emu TIMEOUT 900 ENVIRONMENT "${emu_env}")
  endforeach()
endif()
