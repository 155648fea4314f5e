# Issue 14 (a hostile user's defects): each script under tests/cli/ runs the dsc command line
# as a user would and prints PASS, or FAIL with what went wrong. The multi-rank ones run
# under mpirun (label "mpi"). train_refusals writes its shards with python3 (skipped without).
find_package(MPI REQUIRED COMPONENTS C) # MPIEXEC_EXECUTABLE (mpi.cmake is included after this file)
set(DSC_CLI_SAFETY_ENV "OMP_NUM_THREADS=1" "OMP_WAIT_POLICY=passive" "OPENBLAS_NUM_THREADS=1"
    "OMPI_ALLOW_RUN_AS_ROOT=1" "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1" "OMPI_MCA_rmaps_base_oversubscribe=1"
    "LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tests/mpi/lsan.supp:print_suppressions=0:fast_unwind_on_malloc=0")
function(dsc_cli_safety_test name)
  add_test(NAME cli_${name} COMMAND sh ${PROJECT_SOURCE_DIR}/tests/cli/${name}.sh $<TARGET_FILE:dsc_cli> ${ARGN}
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(cli_${name} PROPERTIES TIMEOUT 300 PASS_REGULAR_EXPRESSION "PASS" FAIL_REGULAR_EXPRESSION "FAIL"
                       ENVIRONMENT "${DSC_CLI_SAFETY_ENV}")
endfunction()
dsc_cli_safety_test(zero_to_fp32_safety)
dsc_cli_safety_test(resume_new_accumulation gas)
add_test(NAME cli_resume_new_accumulation_world
         COMMAND sh ${PROJECT_SOURCE_DIR}/tests/cli/resume_new_accumulation.sh $<TARGET_FILE:dsc_cli> world ${MPIEXEC_EXECUTABLE}
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli_resume_new_accumulation_world PROPERTIES TIMEOUT 300 LABELS mpi RESOURCE_LOCK mpi
                     PASS_REGULAR_EXPRESSION "PASS" FAIL_REGULAR_EXPRESSION "FAIL" ENVIRONMENT "${DSC_CLI_SAFETY_ENV}")
dsc_cli_safety_test(train_signal one)
add_test(NAME cli_train_signal_mpi
         COMMAND sh ${PROJECT_SOURCE_DIR}/tests/cli/train_signal.sh $<TARGET_FILE:dsc_cli> mpi ${MPIEXEC_EXECUTABLE}
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli_train_signal_mpi PROPERTIES TIMEOUT 300 LABELS mpi RESOURCE_LOCK mpi
                     PASS_REGULAR_EXPRESSION "PASS" FAIL_REGULAR_EXPRESSION "FAIL" ENVIRONMENT "${DSC_CLI_SAFETY_ENV}")
if(DSC_PYTHON3)
  dsc_cli_safety_test(train_refusals one)
  add_test(NAME cli_train_refusals_mpi
           COMMAND sh ${PROJECT_SOURCE_DIR}/tests/cli/train_refusals.sh $<TARGET_FILE:dsc_cli> mpi ${MPIEXEC_EXECUTABLE}
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(cli_train_refusals_mpi PROPERTIES TIMEOUT 300 LABELS mpi RESOURCE_LOCK mpi
                       PASS_REGULAR_EXPRESSION "PASS" FAIL_REGULAR_EXPRESSION "FAIL" ENVIRONMENT "${DSC_CLI_SAFETY_ENV}")
else()
  message(STATUS "cli_train_refusals: no python3 to write the shards; the test is not registered")
endif()
