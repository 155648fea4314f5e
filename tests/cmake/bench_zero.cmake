# bench/zero_overhead (ZeRO stages 1-3 on one rank against stage 0, issue 17) at the tiny GPT
# on the guarded device: every stage's row comes out, and stage 2's micro-batch allocates
# and frees nothing (tests/unit/test_zero_overhead asserts the byte counts).
if(TARGET dsc_bench_zero_overhead)
  add_test(NAME bench_zero_overhead_guarded
           COMMAND $<TARGET_FILE:dsc_bench_zero_overhead> --device guarded --model gpt2-tiny --batch 2 --context 16
                   --ga 2 --steps 1)
  set_tests_properties(bench_zero_overhead_guarded PROPERTIES LABELS "bench-smoke" TIMEOUT 60
    ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1"
    PASS_REGULAR_EXPRESSION "stage 0: step.*stage 1: step.*stage 2: step[^\n]*\n +micro-batch +moved [^\n]* 0 allocs, +0 frees.*stage 3: step")
endif()
