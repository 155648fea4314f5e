# The optimizer offload (issue 20) under mpirun: parameters bitwise equal to the run without
# offload on every rank for 1-3 processes, ZeRO stages 1-3, fp32 and bf16; "nvme" on the
# suite's device, "cpu" from the guarded device; offload_param "cpu" at stage 3 from the guarded
# device ("param") and offload_param "nvme" ("pnvme", with and without offload_optimizer
# "nvme"). Each test
# gets its own swap directory under the build tree. Declared at the end of the directory's
# configuration: ${DSC_MPI_TEST_ENV} comes from tests/cmake/mpi.cmake, included after this.
function(dsc_offload_mpi_tests)
  add_executable(test_offload_nvme_mpi ${PROJECT_SOURCE_DIR}/tests/mpi/test_offload_nvme_mpi.c)
  target_link_libraries(test_offload_nvme_mpi PRIVATE dsc_testutil MPI::MPI_C)
  foreach(np 1 2 3)
    set(_nvme_dir ${CMAKE_BINARY_DIR}/nvme-swap-np${np})
    file(MAKE_DIRECTORY ${_nvme_dir})
    add_test(NAME mpi_offload_nvme_np${np}
             COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} --oversubscribe ${MPIEXEC_PREFLAGS}
                     $<TARGET_FILE:test_offload_nvme_mpi> ${MPIEXEC_POSTFLAGS} ${_nvme_dir}
             WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
    set_tests_properties(mpi_offload_nvme_np${np} PROPERTIES TIMEOUT 300 LABELS mpi RESOURCE_LOCK mpi
                         ENVIRONMENT "${DSC_MPI_TEST_ENV}")
    # offload_optimizer.device "cpu" from the guarded device (the optimizer on the host)
    add_test(NAME mpi_offload_cpu_np${np}
             COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} --oversubscribe ${MPIEXEC_PREFLAGS}
                     $<TARGET_FILE:test_offload_nvme_mpi> ${MPIEXEC_POSTFLAGS} cpu
             WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
    set_tests_properties(mpi_offload_cpu_np${np} PROPERTIES TIMEOUT 300 LABELS mpi RESOURCE_LOCK mpi
                         ENVIRONMENT "${DSC_MPI_TEST_ENV}")
    # offload_param.device "cpu" at stage 3 from the guarded device (the partition on the host)
    add_test(NAME mpi_offload_param_np${np}
             COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} --oversubscribe ${MPIEXEC_PREFLAGS}
                     $<TARGET_FILE:test_offload_nvme_mpi> ${MPIEXEC_POSTFLAGS} param
             WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
    set_tests_properties(mpi_offload_param_np${np} PROPERTIES TIMEOUT 300 LABELS mpi RESOURCE_LOCK mpi
                         ENVIRONMENT "${DSC_MPI_TEST_ENV}")
    # offload_param.device "nvme" at stage 3 from the guarded device (the partition in a swap
    # file per rank), without and with offload_optimizer "nvme"
    set(_pnvme_dir ${CMAKE_BINARY_DIR}/param-swap-np${np})
    file(MAKE_DIRECTORY ${_pnvme_dir})
    add_test(NAME mpi_offload_param_nvme_np${np}
             COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} --oversubscribe ${MPIEXEC_PREFLAGS}
                     $<TARGET_FILE:test_offload_nvme_mpi> ${MPIEXEC_POSTFLAGS} pnvme ${_pnvme_dir}
             WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
    set_tests_properties(mpi_offload_param_nvme_np${np} PROPERTIES TIMEOUT 300 LABELS mpi RESOURCE_LOCK mpi
                         ENVIRONMENT "${DSC_MPI_TEST_ENV}")
  endforeach()
endfunction()
if(CMAKE_VERSION VERSION_GREATER_EQUAL 3.19)
  cmake_language(DEFER CALL dsc_offload_mpi_tests)
else()
  dsc_offload_mpi_tests()
endif()

# kill -9 of a run with its optimizer state on NVMe, then --resume, equals the uninterrupted
# run (tests/cli/train_nvme_kill.sh; dsc_cli_safety_test comes from cli_safety.cmake).
dsc_cli_safety_test(train_nvme_kill)
# ... and with the parameter partition on NVMe too (offload_param "nvme", stage 3, bf16):
# tests/cli/train_param_nvme_kill.sh.
dsc_cli_safety_test(train_param_nvme_kill)

# dsc estimate's offload rows, by hand for --model tiny (106,304 parameters, one rank, Adam):
# sub_group_size 10000 gives 11 sub-groups; a record is 2 x 10000 x 4 = 80000 bytes, rounded
# to 81920; the last holds 6304 elements (50432 bytes, rounded to 53248): the file is
# 10 x 81920 + 53248 = 872448 bytes, and 3 buffers of 81920 are 240 KiB.
add_test(NAME cli_estimate_offload
         COMMAND sh -c "d=$(mktemp -d) && printf '%s' '{\"train_micro_batch_size_per_gpu\": 2, \"zero_optimization\": {\"stage\": 1, \"sub_group_size\": 10000, \"offload_optimizer\": {\"device\": \"nvme\", \"nvme_path\": \"/tmp\", \"buffer_count\": 3}}, \"optimizer\": {\"type\": \"AdamW\"}}' > $d/c.json && \
$<TARGET_FILE:dsc_cli> estimate --model tiny --config $d/c.json; rm -rf $d"
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli_estimate_offload PROPERTIES
  PASS_REGULAR_EXPRESSION "1 +cpu .*a no-op on the cpu device.*\n1 +nvme +[0-9.]+ MiB +0 B +240.00 KiB +852.00 KiB +[0-9]+ +0 +872448 +<- config.*\n3 +nvme .* 872448")

# offload_optimizer.device "cpu" from the guarded device: the step-20 line of the run without
# offload, and checkpoints that resume across the setting both ways (stages 1-3, bf16).
dsc_cli_safety_test(train_offload_cpu_resume)

# offload_param.device "cpu" (stage 3) from the guarded device: the step-20 line of the run
# without offload, and checkpoints that resume across the setting both ways (bf16).
dsc_cli_safety_test(train_offload_param_resume)

# dsc estimate's parameter-offload rows, by hand for d12 in bf16 on one rank (124,439,808
# parameters, the partition is all of them): offload_param "cpu" moves 2 x 124,439,808 =
# 248,879,616 bytes from the device's parameters (249,122,304 with the persistent small
# parameters' gathered copies, 242,688 bytes, which stay) to pinned host memory; with the
# optimizer offload too, the host holds 2,239,916,544 bytes against 2,125,254,656 without
# offload_param: the partition (248,879,616) replaces the staging parts of the 16-bit update
# (two buffers of 2^25 elements, 134,217,728 bytes: the host step runs in parts, one going up
# while the CPU fills the other).
# offload_param "nvme" (the config's row) moves the same bytes to a swap file of 249,139,200
# bytes, every shard rounded up to 4096 bytes: wte 77,194,752 -> 77,197,312, wpe 1,572,864,
# per layer the four weight matrices 14,155,776 (exact multiples) and eight vectors of at most
# 6,144 bytes -> 40,960, ln_f 8,192: 77,197,312 + 1,572,864 + 12 x 14,196,736 + 8,192; the host
# holds 5 buffers (buffer_count) of wte's 77,197,312 bytes (below buffer_size's 1e8
# elements): 385,986,560 bytes, pinned; with the optimizer offload 16 x 124,439,808 (master,
# gradient copy, two states; nothing staged) + 385,986,560 = 2,377,023,488.
add_test(NAME cli_estimate_param_offload
         COMMAND sh -c "d=$(mktemp -d) && printf '%s' '{\"train_micro_batch_size_per_gpu\": 2, \"bf16\": {\"enabled\": true}, \"zero_optimization\": {\"stage\": 3, \"offload_param\": {\"device\": \"nvme\", \"nvme_path\": \"/tmp\"}}, \"optimizer\": {\"type\": \"AdamW\"}}' > $d/c.json && \
$<TARGET_FILE:dsc_cli> estimate --model d12 --config $d/c.json; rm -rf $d"
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli_estimate_param_offload PROPERTIES
  PASS_REGULAR_EXPRESSION "none +none +[0-9.]+ GiB +0 B +0 B +[0-9]+ +249122304 +0 +0\nnone +cpu +[0-9.]+ GiB .* 249122304 +2125254656 +0\ncpu +none +[0-9.]+ GiB +237.35 MiB +237.35 MiB +[0-9]+ +242688 +248879616 +0\ncpu +cpu .* 242688 +2239916544 +0\nnvme +none +[0-9.]+ GiB +368.11 MiB +368.11 MiB +[0-9]+ +242688 +385986560 +249139200 +<- config\nnvme +cpu .* 242688 +2377023488 +249139200\n")
