# Several ranks on GPUs (issue 18; tests/cuda/nccl): the collectives against hand-computed
# sums (test_nccl_comm) and ZeRO 0-3 in fp32 and bf16 against one rank (test_nccl_zero), with
# the MPI backend on device buffers (every rank may share the one GPU: mpirun -np 2 and 3),
# with NCCL at world size 1 (against the self backend) and with NCCL on one GPU per rank
# (skipped on a machine with fewer GPUs than ranks: NCCL refuses two ranks on one GPU), and a
# killed rank. Label `cuda`: they exit 77 (skipped, with the reason) without a GPU, so CI and
# this machine build and run them; scripts/gpu-check.sh runs them on the GPU machine. With
# the CUDA emulator (DSC_CUDA_EMU) the same programs run on every x86-64 machine (label
# cuda-emu): the MPI backend's staging on "device" memory, and the NCCL backend against
# tests/cuda/emu/nccl_stub.c (a one-rank stand-in for libnccl.so.2).
set(DSC_NCCL_TEST_ENV
    "OMPI_ALLOW_RUN_AS_ROOT=1" "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1" "OMPI_MCA_rmaps_base_oversubscribe=1"
    "OMP_NUM_THREADS=1" "OMP_WAIT_POLICY=passive" "OPENBLAS_NUM_THREADS=1"
    # what OpenMPI's libraries keep until exit (tests/cmake/mpi.cmake)
    "LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tests/mpi/lsan.supp:print_suppressions=0:fast_unwind_on_malloc=0")
set(DSC_NCCL_KILL_EXPECT "Process name: \\[\\[[0-9]+,1\\],1\\]|rank 1 with PID [0-9]+ on node .* exited on signal 9")

# The program test_nccl${suffix} (modes comm and zero) on library `lib`.
function(dsc_nccl_programs suffix lib)
  set(d ${PROJECT_SOURCE_DIR}/tests/cuda/nccl)
  add_executable(test_nccl${suffix} ${d}/test_nccl.c ${d}/test_nccl_comm.c ${d}/test_nccl_zero.c ${d}/test_nccl_watchdog.c
                 ${PROJECT_SOURCE_DIR}/tests/common/check.c ${PROJECT_SOURCE_DIR}/tests/common/zero_check.c)
  target_include_directories(test_nccl${suffix} PRIVATE ${PROJECT_SOURCE_DIR}/tests/common ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(test_nccl${suffix} PRIVATE ${lib} m)
endfunction()

# The tests of one build (suffix "" on the real device, "_emu" on the emulator), labelled
# `label`, with `env` added to each one's environment.
function(dsc_nccl_tests suffix label env)
  set(all_env ${DSC_NCCL_TEST_ENV} ${env})
  set(prog $<TARGET_FILE:test_nccl${suffix}>)
  # world size 1: NCCL
  add_test(NAME nccl_comm_ws1${suffix} COMMAND ${prog} comm WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  add_test(NAME nccl_zero_ws1${suffix} COMMAND ${prog} zero WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  foreach(t nccl_comm_ws1 nccl_zero_ws1)
    set_tests_properties(${t}${suffix} PROPERTIES LABELS ${label} SKIP_RETURN_CODE 77 TIMEOUT 900
                         ENVIRONMENT "${all_env};DSC_COMM=nccl")
  endforeach()
  # several ranks: the MPI backend on device buffers (one GPU is enough), then NCCL
  foreach(np 2 3)
    foreach(backend mpi nccl)
      foreach(kind comm zero)
        if(suffix STREQUAL "_emu" AND kind STREQUAL "zero" AND (np EQUAL 3 OR DSC_SANITIZE))
          # the emulated engine is slow: 2 ranks cover the staging (under ASan it took 540 s
          # at a load of 13 on 2 cores and passed: left to the normal build)
          continue()
        endif()
        set(name nccl_${kind}_${backend}_np${np}${suffix})
        add_test(NAME ${name}
                 COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} --oversubscribe ${prog} ${kind}
                 WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
        set_tests_properties(${name} PROPERTIES LABELS ${label} SKIP_RETURN_CODE 77 TIMEOUT 900 RESOURCE_LOCK mpi
                             ENVIRONMENT "${all_env};DSC_COMM=${backend}")
      endforeach()
    endforeach()
  endforeach()
  # the debug check (DSC_COMM_DEBUG=1) naming ranks that call different collectives
  foreach(backend mpi nccl)
    set(name nccl_comm_debug_${backend}_np2${suffix})
    add_test(NAME ${name} COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 --oversubscribe ${prog} comm
             WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
    set_tests_properties(${name} PROPERTIES LABELS ${label} SKIP_RETURN_CODE 77 TIMEOUT 900 RESOURCE_LOCK mpi
                         ENVIRONMENT "${all_env};DSC_COMM=${backend};DSC_COMM_DEBUG=1")
  endforeach()
  # 16-bit sums on NCCL: native bf16 against f32 accumulation (2 GPUs; skipped on fewer)
  add_test(NAME nccl_bf16_np2${suffix}
           COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 --oversubscribe ${prog} bf16
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(nccl_bf16_np2${suffix} PROPERTIES LABELS ${label} SKIP_RETURN_CODE 77 TIMEOUT 900
                       RESOURCE_LOCK mpi ENVIRONMENT "${all_env};DSC_COMM=nccl")
  # A rank that never joins collective #3 (it sleeps): the others report the collective, its
  # size and the missing rank within the 3 s timeout, and the job aborts. On MPI the wait
  # times out; on NCCL the wait only orders, and the host read of #3's result is what blocks
  # until the watchdog aborts NCCL (its report names the read).
  set(DSC_NCCL_TIMEOUT_EXPECT
      "collective #3 allreduce\\(1024 f32 sum\\) at \"train step 3\" timed out after [0-9.]+ s on rank 0 of 2"
      "ranks that never arrived: rank 1 \\(no answer within [0-9.]+ s: not inside any dsc collective call\\)")
  set(DSC_NCCL_TIMEOUT_EXPECT_mpi ${DSC_NCCL_TIMEOUT_EXPECT})
  set(DSC_NCCL_TIMEOUT_EXPECT_nccl ${DSC_NCCL_TIMEOUT_EXPECT}
      "rank 0: collective #3's wait returned on nccl \\(ordered\\); reading its result on the host"
      "on rank 0 of 2 \\(found by the communicator's watchdog: not finished on the GPU by its deadline; the host's wait had ordered later device work after it and gone on; NCCL's communicator was aborted; noticed by a host read of device memory\\)")
  foreach(backend mpi nccl)
    set(name nccl_timeout_${backend}${suffix})
    add_test(NAME ${name}
             COMMAND sh -c "${MPIEXEC_EXECUTABLE} -np 2 --oversubscribe \"$0\" probe || exit $?; exec \"$1\" -DMPIEXEC=${MPIEXEC_EXECUTABLE} -DNP=2 -DPROG=\"$0\" -DARGS=timeout -DMAX_SECONDS=100 \"-DEXPECT=$2\" -P ${PROJECT_SOURCE_DIR}/tests/mpi/expect_abort.cmake"
                     ${prog} ${CMAKE_COMMAND} "${DSC_NCCL_TIMEOUT_EXPECT_${backend}}"
             WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
    set_tests_properties(${name} PROPERTIES LABELS ${label} SKIP_RETURN_CODE 77 TIMEOUT 300 RESOURCE_LOCK mpi
                         ENVIRONMENT "${all_env};DSC_COMM=${backend}")
  endforeach()
  # The same rank never joining #3, NCCL: rank 0 frees device memory after #3's ordered wait
  # (cudaFree waits for the whole device): the free's check reports #3 instead of the host
  # blocking inside cudaFree.
  set(DSC_NCCL_TIMEOUT_FREE_EXPECT ${DSC_NCCL_TIMEOUT_EXPECT}
      "rank 0: collective #3's wait returned on nccl \\(ordered\\); freeing device memory"
      "on rank 0 of 2 \\(found by the communicator's watchdog: not finished on the GPU by its deadline; the host's wait had ordered later device work after it and gone on; NCCL's communicator was aborted; noticed by a free of device memory, which waits for the whole device\\)")
  add_test(NAME nccl_timeout_free_nccl${suffix}
           COMMAND sh -c "${MPIEXEC_EXECUTABLE} -np 2 --oversubscribe \"$0\" probe || exit $?; exec \"$1\" -DMPIEXEC=${MPIEXEC_EXECUTABLE} -DNP=2 -DPROG=\"$0\" -DARGS=timeout_free -DMAX_SECONDS=100 \"-DEXPECT=$2\" -P ${PROJECT_SOURCE_DIR}/tests/mpi/expect_abort.cmake"
                   ${prog} ${CMAKE_COMMAND} "${DSC_NCCL_TIMEOUT_FREE_EXPECT}"
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(nccl_timeout_free_nccl${suffix} PROPERTIES LABELS ${label} SKIP_RETURN_CODE 77 TIMEOUT 300
                       RESOURCE_LOCK mpi ENVIRONMENT "${all_env};DSC_COMM=nccl")
  # A rank killed (SIGKILL) between collectives: every other rank must end within the limit.
  # `test_nccl probe` exits 77 first where the test cannot run.
  foreach(backend mpi nccl)
    set(name nccl_killed_rank_${backend}${suffix})
    set(np 3)
    if(backend STREQUAL "nccl")
      set(np 2) # one GPU per rank on a 2-GPU machine
    endif()
    add_test(NAME ${name}
             COMMAND sh -c "${MPIEXEC_EXECUTABLE} -np ${np} --oversubscribe \"$0\" probe || exit $?; exec \"$1\" -DMPIEXEC=${MPIEXEC_EXECUTABLE} -DNP=${np} -DPROG=\"$0\" -DARGS=kill -DMAX_SECONDS=100 \"-DEXPECT=$2\" -P ${PROJECT_SOURCE_DIR}/tests/mpi/expect_abort.cmake"
                     ${prog} ${CMAKE_COMMAND} "${DSC_NCCL_KILL_EXPECT}"
             WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
    set_tests_properties(${name} PROPERTIES LABELS ${label} SKIP_RETURN_CODE 77 TIMEOUT 300 RESOURCE_LOCK mpi
                         ENVIRONMENT "${all_env};DSC_COMM=${backend}")
  endforeach()
endfunction()

if(DSC_CUDA)
  dsc_nccl_programs("" dsc)
  dsc_nccl_tests("" cuda "")
endif()

# The emulator's library exists once cmake/cuda.cmake ran (after this file): defer.
function(dsc_nccl_emu)
  if(TARGET dsc_emu)
    add_library(dsc_nccl_stub SHARED ${PROJECT_SOURCE_DIR}/tests/cuda/emu/nccl_stub.c)
    set_target_properties(dsc_nccl_stub PROPERTIES OUTPUT_NAME nccl_stub)
    dsc_nccl_programs(_emu dsc_emu)
    target_compile_definitions(test_nccl_emu PRIVATE DSC_CUDA_EMU)
    add_dependencies(test_nccl_emu dsc_nccl_stub)
    dsc_nccl_tests(_emu cuda-emu "DSC_NCCL_LIBRARY=$<TARGET_FILE:dsc_nccl_stub>;DSC_NCCL_ZERO_QUICK=1")
    # The watchdog (src/comm/comm_watchdog.h) with the stub's fault injection: a call stuck
    # inside NCCL past the 1 s timeout, and NCCL's asynchronous error on a request the host
    # never waits on. Each must end the job with its report ("after [1-9]": at least the 1 s
    # timeout; the only time figure checked, a lower bound).
    set(wd_env ${DSC_NCCL_TEST_ENV} "DSC_NCCL_LIBRARY=$<TARGET_FILE:dsc_nccl_stub>" "DSC_COMM=nccl")
    set(DSC_NCCL_WD_HANG_EXPECT
        "collective #3 allreduce\\(1024 f32 sum\\) at \"train step 3\" timed out after [1-9][0-9.]* s on rank 0 of 1 \\(found by the communicator's watchdog: not finished on the GPU by its deadline; the host was still inside NCCL's call for it; NCCL's communicator was aborted\\)")
    set(DSC_NCCL_WD_ASYNC_EXPECT
        "the watchdog fired while the host made no call into the communicator"
        "collective #2 allreduce\\(256 f32 sum\\) failed after [0-9.e-]+ s on rank 0 of 1 \\(found by the communicator's watchdog: NCCL reports an asynchronous error: stub NCCL: remote error \\(injected\\); the host had queued it and gone on, never waiting on it; NCCL's communicator was aborted\\)")
    # the same error found while the host's next step is a read of device memory: the read's
    # check reports it (src/comm/comm.c dsc__comm_host_read_check)
    set(DSC_NCCL_WD_READ_EXPECT
        "the watchdog fired while the host made no call into the communicator"
        "collective #2 allreduce\\(256 f32 sum\\) failed after [0-9.e-]+ s on rank 0 of 1 \\(found by the communicator's watchdog: NCCL reports an asynchronous error: stub NCCL: remote error \\(injected\\); the host had queued it and gone on, never waiting on it; NCCL's communicator was aborted; noticed by a host read of device memory\\)")
    # the same error, the host's next step a device free (which waits for the whole device on a
    # GPU): the free's check reports it
    set(DSC_NCCL_WD_FREE_EXPECT
        "the watchdog fired while the host made no call into the communicator"
        "collective #2 allreduce\\(256 f32 sum\\) failed after [0-9.e-]+ s on rank 0 of 1 \\(found by the communicator's watchdog: NCCL reports an asynchronous error: stub NCCL: remote error \\(injected\\); the host had queued it and gone on, never waiting on it; NCCL's communicator was aborted; noticed by a free of device memory, which waits for the whole device\\)")
    # two NCCL communicators on the context, the error the second's: the read's check polls both
    set(DSC_NCCL_WD_TWO_EXPECT
        "the watchdog fired while the host made no call into the communicator"
        "collective #1 allreduce\\(256 f32 sum\\) failed after [0-9.e-]+ s on rank 0 of 1 \\(found by the communicator's watchdog: NCCL reports an asynchronous error: stub NCCL: remote error \\(injected\\); the host had queued it and gone on, never waiting on it; NCCL's communicator was aborted; noticed by a host read of device memory; on communicator 2 of the 2 this context watches \\(nccl, rank 0 of 1\\)\\)")
    # the same error, the host's next step inside the CUDA device: its scratch grows (freeing
    # the old one), or a copy from page-locked memory waits for the stream
    foreach(m scratch upload)
      if(m STREQUAL "scratch")
        set(what "the growth of the device's scratch, which frees the old one")
      else()
        set(what "a host-to-device copy from page-locked memory, which waits for the stream")
      endif()
      string(TOUPPER ${m} up)
      set(DSC_NCCL_WD_${up}_EXPECT
          "the watchdog fired while the host made no call into the communicator"
          "collective #2 allreduce\\(256 f32 sum\\) failed after [0-9.e-]+ s on rank 0 of 1 \\(found by the communicator's watchdog: NCCL reports an asynchronous error: stub NCCL: remote error \\(injected\\); the host had queued it and gone on, never waiting on it; NCCL's communicator was aborted; noticed by ${what}\\)")
    endforeach()
    foreach(mode hang async read free two scratch upload)
      string(TOUPPER ${mode} up)
      add_test(NAME nccl_watchdog_${mode}_emu
               COMMAND sh -c "${MPIEXEC_EXECUTABLE} -np 1 \"$0\" watchdog_probe || exit $?; exec \"$1\" -DMPIEXEC=${MPIEXEC_EXECUTABLE} -DNP=1 -DPROG=\"$0\" -DARGS=watchdog_${mode} -DMAX_SECONDS=100 \"-DEXPECT=$2\" -P ${PROJECT_SOURCE_DIR}/tests/mpi/expect_abort.cmake"
                       $<TARGET_FILE:test_nccl_emu> ${CMAKE_COMMAND} "${DSC_NCCL_WD_${up}_EXPECT}"
               WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
      set_tests_properties(nccl_watchdog_${mode}_emu PROPERTIES LABELS cuda-emu SKIP_RETURN_CODE 77 TIMEOUT 300
                           RESOURCE_LOCK mpi ENVIRONMENT "${wd_env}")
    endforeach()
  endif()
endfunction()
cmake_language(DEFER DIRECTORY ${PROJECT_SOURCE_DIR} CALL dsc_nccl_emu)
