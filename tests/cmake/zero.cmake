# ZeRO stages 0-2 under mpirun (label "mpi"): equivalence with a single rank for 1-4
# processes, and a killed rank making the others exit non-zero with a timeout report
# (dsc_mpi_test and dsc_mpi_abort_test: tests/cmake/mpi.cmake).
add_executable(test_zero_mpi ${PROJECT_SOURCE_DIR}/tests/mpi/test_zero_mpi.c)
target_link_libraries(test_zero_mpi PRIVATE dsc_testutil MPI::MPI_C)
foreach(np 1 2 3 4)
  dsc_mpi_test(mpi_zero_np${np} ${np} test_zero_mpi 300)
endforeach()
# ZeRO-1 with overlap_comm: bitwise the blocking reduction, the same bytes (2 and 3 ranks).
add_executable(test_zero1_overlap_mpi ${PROJECT_SOURCE_DIR}/tests/mpi/test_zero1_overlap_mpi.c)
target_link_libraries(test_zero1_overlap_mpi PRIVATE dsc_testutil MPI::MPI_C)
foreach(np 2 3)
  dsc_mpi_test(mpi_zero1_overlap_np${np} ${np} test_zero1_overlap_mpi 120)
endforeach()
dsc_mpi_abort_test(mpi_zero_killed_rank 3 test_zero_mpi kill 100 180
                   "Process name: \\[\\[[0-9]+,1\\],1\\]|rank 1 with PID [0-9]+ on node .* exited on signal 9")
