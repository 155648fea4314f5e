# bench/gpt2_gpu (issue 17's GPU benchmark) at a tiny shape on the CPU: the row and the RESULT
# line come out, with the loss of random tokens near ln(vocab) = ln 512 = 6.24, on the CPU and
# on the guarded device (the bench touches device memory only through the public API); and
# an impossible batch ends with the out-of-memory message (exit 3) instead of a crash.
if(TARGET dsc_bench_gpt2_gpu)
  foreach(dev cpu guarded)
    add_test(NAME bench_gpt2_gpu_smoke_${dev}
             COMMAND $<TARGET_FILE:dsc_bench_gpt2_gpu> --device ${dev} --model gpt2-tiny --context 32 --batch 2
                     --tokens-per-step 128 --vocab 512 --steps 3)
    set_tests_properties(bench_gpt2_gpu_smoke_${dev} PROPERTIES LABELS "bench-smoke" TIMEOUT 60
      ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1"
      PASS_REGULAR_EXPRESSION "\\| dsc [^|]+ bf16 ZeRO-0 \\| ${dev} \\| gpt2-tiny \\| 2 \\| 2 \\| 32 \\| 2 of 3 \\|.*RESULT system=dsc model=gpt2-tiny batch=2 ga=2 ms_median=[0-9.]+ tok_s=[0-9.]+ peak_mib=[0-9]+ loss=6\\.[12]")
  endforeach()
  # --offload cpu (the optimizer on the host) from the guarded device, ZeRO-2: the same loss
  add_test(NAME bench_gpt2_gpu_offload_guarded
           COMMAND $<TARGET_FILE:dsc_bench_gpt2_gpu> --device guarded --model gpt2-tiny --context 32 --batch 2
                   --tokens-per-step 128 --vocab 512 --steps 3 --zero 2 --offload cpu)
  set_tests_properties(bench_gpt2_gpu_offload_guarded PROPERTIES LABELS "bench-smoke" TIMEOUT 60
    ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1"
    PASS_REGULAR_EXPRESSION "\\| dsc [^|]+ bf16 ZeRO-2 offload cpu \\| guarded \\|.*RESULT system=dsc .* loss=6\\.[12][0-9]* offload=cpu")
  # --max-seconds: the run stops after step 2 (the first that can end it) and times 1 of 2
  add_test(NAME bench_gpt2_gpu_time_limit
           COMMAND $<TARGET_FILE:dsc_bench_gpt2_gpu> --device cpu --model gpt2-tiny --context 32 --batch 2
                   --tokens-per-step 64 --vocab 512 --steps 5 --max-seconds 0.000001)
  set_tests_properties(bench_gpt2_gpu_time_limit PROPERTIES LABELS "bench-smoke" TIMEOUT 60
    ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1"
    PASS_REGULAR_EXPRESSION "\\| 2 \\| 1 \\| 32 \\| 1 of 2 \\|")
  # A shape given by --layers/--embd/--heads with --ga, offloaded from the guarded device: the
  # RESULT line carries tokens per step, the offloaded optimizer's host bytes (measured) and
  # the plan's, the start and the offloaded step's seconds, and of those its waits for the copies
  add_test(NAME bench_gpt2_gpu_shape_offload_guarded
           COMMAND $<TARGET_FILE:dsc_bench_gpt2_gpu> --device guarded --model gpt2-tiny --layers 2 --embd 128 --heads 2
                   --context 32 --batch 2 --ga 2 --vocab 512 --steps 3 --zero 2 --offload cpu)
  set_tests_properties(bench_gpt2_gpu_shape_offload_guarded PROPERTIES LABELS "bench-smoke" TIMEOUT 60
    ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1"
    PASS_REGULAR_EXPRESSION "RESULT system=dsc model=L2-C128-H2 batch=2 ga=2 .* loss=6\\.[12][0-9]* offload=cpu tokens_per_step=128 mfu=[0-9.]+ params=466432 layers=2 embd=128 heads=2 zero=2 ckpt=0 host_mib=8 pinned_mib=0 plan_device_mib=[0-9]+ plan_host_mib=8 init_s=[0-9.]+ opt_step_s=[0-9.]+ opt_wait_s=[0-9.]+")
  # The big model's plan (no allocation): gpt-6.7b, ZeRO-2, the optimizer offloaded, B 4:
  # 6.65B parameters, 12 bytes each on the host (the fp32 master, pinned, and 2 Adam moments)
  # + two pinned 2^25-float gradient buffers and one 2^25-element bf16 staging buffer (320 MiB);
  # the device 2 + 4 (the bf16 parameters and the fp32 gradient partition)
  add_test(NAME bench_gpt2_gpu_plan_6_7b
           COMMAND $<TARGET_FILE:dsc_bench_gpt2_gpu> --device guarded --model gpt-6.7b --batch 4 --ga 32 --zero 2
                   --offload cpu --plan-only)
  # (no ';' in a PASS_REGULAR_EXPRESSION: it splits the value into a list of expressions, any of
  # which passes; '.' stands for it)
  set_tests_properties(bench_gpt2_gpu_plan_6_7b PROPERTIES LABELS "bench-smoke" TIMEOUT 60
    PASS_REGULAR_EXPRESSION "memory plan \\(dsc estimate\\): device 50\\.40 GiB = parameters 12\\.39 \\+ gradients 0\\.00 \\+ optimizer 0\\.00 \\+ gradient partition 24\\.79 .*start 37\\.18 GiB. host 74\\.74 GiB \\(pinned 25\\.16\\)")
  # A run that cannot fit stops at its plan, before any allocation, with exit status 3
  add_test(NAME bench_gpt2_gpu_plan_refuses
           COMMAND $<TARGET_FILE:dsc_bench_gpt2_gpu> --device guarded --layers 400 --embd 8192 --heads 128 --batch 1
                   --tokens-per-step 1024 --zero 2 --offload cpu)
  set_tests_properties(bench_gpt2_gpu_plan_refuses PROPERTIES LABELS "bench-smoke" TIMEOUT 60
    PASS_REGULAR_EXPRESSION "does NOT fit.*out of memory on guarded \\(L400-C8192-H128\\) at B 1 \\(checking the memory plan\\): the host has")
  add_test(NAME bench_gpt2_gpu_oom
           COMMAND $<TARGET_FILE:dsc_bench_gpt2_gpu> --device cpu --model gpt2-tiny --context 8192 --batch 1048576
                   --tokens-per-step 8589934592 --steps 1)
  # (under -DDSC_SANITIZE=ON, ASan would abort at the impossible allocation instead of failing it)
  set_tests_properties(bench_gpt2_gpu_oom PROPERTIES LABELS "bench-smoke" TIMEOUT 60
    ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1;ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1"
    PASS_REGULAR_EXPRESSION "gpt2_gpu: out of memory on cpu \\(gpt2-tiny\\) at B 1048576")
endif()

# Several ranks under mpirun (issue 19's runs, here on the guarded device: its memory faults on
# host access, so this is the device path): 2 and 3 ranks against one, ZeRO 0-3, parameters
# within docs/zero.md's bf16 tolerance.
if(TARGET dsc_bench_gpt2_gpu)
  find_package(MPI REQUIRED COMPONENTS C) # MPIEXEC_EXECUTABLE
  foreach(dev guarded)
    add_test(NAME bench_gpt2_gpu_ranks_${dev}
             COMMAND sh ${PROJECT_SOURCE_DIR}/tests/bench/gpt2_gpu_ranks.sh $<TARGET_FILE:dsc_bench_gpt2_gpu>
                     ${MPIEXEC_EXECUTABLE} ${dev})
    # (LeakSanitizer: OpenMPI's own allocations suppressed as for every mpirun test, tests/cmake/mpi.cmake)
    set_tests_properties(bench_gpt2_gpu_ranks_${dev} PROPERTIES LABELS "bench-smoke;mpi" TIMEOUT 300 RESOURCE_LOCK mpi
      ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1;OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tests/mpi/lsan.supp:print_suppressions=0:fast_unwind_on_malloc=0"
      PASS_REGULAR_EXPRESSION "gpt2_gpu ranks: all within 1e-2")
  endforeach()
endif()
