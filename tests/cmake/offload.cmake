# The NVMe optimizer offload (issue 20) under mpirun: parameters bitwise equal to the
# in-memory run on every rank for 1-3 processes, ZeRO stages 1-3, fp32 and bf16. Each test
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
  endforeach()
endfunction()
if(CMAKE_VERSION VERSION_GREATER_EQUAL 3.19)
  cmake_language(DEFER CALL dsc_offload_mpi_tests)
else()
  dsc_offload_mpi_tests()
endif()
