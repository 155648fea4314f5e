# Engine checkpoints (issue 8). The unit test drives `dsc zero-to-fp32` in-process, so it
# links the command's source. The mpirun tests (label "mpi") save on 4 processes at ZeRO
# stage 2, then resume on 4 (bit-exact, dropout on), 1 (stage 0), 2 (stage 3) and 3
# (stage 1); the
# resume tests need the saved checkpoint (fixture ckpt_mpi).
target_sources(test_engine_ckpt PRIVATE ${PROJECT_SOURCE_DIR}/tools/cmd_zero_to_fp32.c)

# The mpirun tests use dsc_mpi_test and ${DSC_MPI_TEST_ENV}, which tests/cmake/mpi.cmake defines after this
# file is included (files are included in name order): they are declared at the end of the
# directory's configuration.
function(dsc_ckpt_mpi_tests)
  add_executable(test_ckpt_mpi ${PROJECT_SOURCE_DIR}/tests/mpi/test_ckpt_mpi.c)
  target_link_libraries(test_ckpt_mpi PRIVATE dsc_testutil MPI::MPI_C)
  set(DSC_CKPT_MPI_DIR ${CMAKE_BINARY_DIR}/ckpt_mpi)
  foreach(run "save;4" "resume;4" "load;1" "load;2" "load;3")
    list(GET run 0 mode)
    list(GET run 1 np)
    set(name mpi_ckpt_${mode}_np${np})
    dsc_mpi_test(${name} ${np} test_ckpt_mpi 300 ${mode} ${DSC_CKPT_MPI_DIR})
    if(mode STREQUAL "save")
      set_tests_properties(${name} PROPERTIES FIXTURES_SETUP ckpt_mpi)
    else()
      set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED ckpt_mpi)
    endif()
  endforeach()
endfunction()
if(CMAKE_VERSION VERSION_GREATER_EQUAL 3.19)
  cmake_language(DEFER CALL dsc_ckpt_mpi_tests)
else()
  dsc_ckpt_mpi_tests()
endif()
