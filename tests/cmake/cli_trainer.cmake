# Issue 21 (dsc train as a DeepSpeed / Hugging Face user expects it): each script under
# tests/cli/ prints PASS, or FAIL with what went wrong. train_output's pseudo-terminal and
# image checks use python3 (it passes, saying skipped, without it).
find_package(MPI REQUIRED COMPONENTS C) # MPIEXEC_EXECUTABLE
set(DSC_CLI_TRAINER_ENV "OMP_NUM_THREADS=1" "OMP_WAIT_POLICY=passive" "OPENBLAS_NUM_THREADS=1"
    "OMPI_ALLOW_RUN_AS_ROOT=1" "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1" "OMPI_MCA_rmaps_base_oversubscribe=1"
    "LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tests/mpi/lsan.supp:print_suppressions=0:fast_unwind_on_malloc=0")
foreach(name trainer_config train_output starter_configs)
  add_test(NAME cli_${name} COMMAND sh ${PROJECT_SOURCE_DIR}/tests/cli/${name}.sh $<TARGET_FILE:dsc_cli>
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(cli_${name} PROPERTIES TIMEOUT 300 PASS_REGULAR_EXPRESSION "PASS" FAIL_REGULAR_EXPRESSION "FAIL"
                       ENVIRONMENT "${DSC_CLI_TRAINER_ENV}")
endforeach()
# The same output checks with one rank under mpirun on a terminal: plain lines.
add_test(NAME cli_train_output_mpi
         COMMAND sh ${PROJECT_SOURCE_DIR}/tests/cli/train_output.sh $<TARGET_FILE:dsc_cli> ${MPIEXEC_EXECUTABLE}
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli_train_output_mpi PROPERTIES TIMEOUT 300 LABELS mpi RESOURCE_LOCK mpi
                     PASS_REGULAR_EXPRESSION "PASS" FAIL_REGULAR_EXPRESSION "FAIL" ENVIRONMENT "${DSC_CLI_TRAINER_ENV}")
# The starter configs' ZeRO-2 and ZeRO-3 files on 2 ranks, through `dsc launch -np 2`.
add_test(NAME cli_starter_configs_mpi
         COMMAND sh ${PROJECT_SOURCE_DIR}/tests/cli/starter_configs.sh $<TARGET_FILE:dsc_cli> mpi ${MPIEXEC_EXECUTABLE}
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli_starter_configs_mpi PROPERTIES TIMEOUT 300 LABELS mpi RESOURCE_LOCK mpi
                     PASS_REGULAR_EXPRESSION "PASS" FAIL_REGULAR_EXPRESSION "FAIL" ENVIRONMENT "${DSC_CLI_TRAINER_ENV}")
# dsc launch: the mpirun command it builds for each of DeepSpeed's launcher options and the
# refusals (tests/cli/launch_dry_run.sh), then a real 2-rank ZeRO-2 run through `-np 2`, which
# prints the mpirun line it runs.
add_test(NAME cli_launch_dry_run COMMAND sh ${PROJECT_SOURCE_DIR}/tests/cli/launch_dry_run.sh $<TARGET_FILE:dsc_cli>
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli_launch_dry_run PROPERTIES PASS_REGULAR_EXPRESSION "PASS" FAIL_REGULAR_EXPRESSION "FAIL")
add_test(NAME cli_launch_mpi
         COMMAND sh -c "$<TARGET_FILE:dsc_cli> launch -np 2 --mpirun ${MPIEXEC_EXECUTABLE} train --config configs/ds_zero2.json --layers 1 --embd 32 --heads 2 --context 16 --data README.md --steps 3 --eval-every 0 2>&1; echo exit=$?"
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli_launch_mpi PROPERTIES TIMEOUT 300 LABELS mpi RESOURCE_LOCK mpi
  PASS_REGULAR_EXPRESSION "dsc launch: [^\n]*mpi[a-z]* -np 2 [^\n]*train --config configs/ds_zero2.json.*world_size=2.*ZeRO stage 2, 2 rank.*step +3/3 \\| loss.*exit=0"
  ENVIRONMENT "${DSC_CLI_TRAINER_ENV}")
