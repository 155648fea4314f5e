# ZeRO stages 0-2 under mpirun (label "mpi"): equivalence with a single rank for 1-4
# processes, and a killed rank making the others exit non-zero with a timeout report.
add_executable(test_zero_mpi ${PROJECT_SOURCE_DIR}/tests/mpi/test_zero_mpi.c)
target_link_libraries(test_zero_mpi PRIVATE dsc_testutil MPI::MPI_C)
foreach(np 1 2 3 4)
  add_test(NAME mpi_zero_np${np}
           COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} --oversubscribe ${MPIEXEC_PREFLAGS}
                   $<TARGET_FILE:test_zero_mpi> ${MPIEXEC_POSTFLAGS}
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(mpi_zero_np${np} PROPERTIES TIMEOUT 300 LABELS mpi RESOURCE_LOCK mpi
                       ENVIRONMENT "${DSC_MPI_TEST_ENV}")
endforeach()
add_test(NAME mpi_zero_killed_rank
         COMMAND ${CMAKE_COMMAND} -DMPIEXEC=${MPIEXEC_EXECUTABLE} -DNP=3 -DPROG=$<TARGET_FILE:test_zero_mpi>
                 -DARGS=kill -DMAX_SECONDS=100
                 "-DEXPECT=Process name: \\[\\[[0-9]+,1\\],1\\]|rank 1 with PID [0-9]+ on node .* exited on signal 9"
                 -P ${PROJECT_SOURCE_DIR}/tests/mpi/expect_abort.cmake
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(mpi_zero_killed_rank PROPERTIES TIMEOUT 180 LABELS mpi RESOURCE_LOCK mpi
                     ENVIRONMENT "${DSC_MPI_TEST_ENV}")
