# Runs a multi-rank command (an mpirun line, MPMD allowed) that must fail cleanly on every
# rank, and checks how: cmake -P with
#   -DCMD=<program;arg;...> -DMAX_SECONDS=<s> -DEXPECT=<regex;...>
# Fails when the job exits 0, runs past MAX_SECONDS (a hang), misses an expected message
# (run mpirun with --tag-output to match each rank's lines), or shows a crash or an abort
# instead of the clean error (a signal, AddressSanitizer, MPI's fatal handler, MPI_Abort,
# or a line the program marks UNEXPECTED).
foreach(v CMD MAX_SECONDS EXPECT)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "expect_ranks.cmake: ${v} is not set")
  endif()
endforeach()
string(TIMESTAMP t0 "%s")
execute_process(COMMAND ${CMD} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out TIMEOUT ${MAX_SECONDS})
string(TIMESTAMP t1 "%s")
math(EXPR dt "${t1} - ${t0}")
message("---- output (exit ${rc}, ${dt} s) ----\n${out}----")
if("${rc}" STREQUAL "0")
  message(FATAL_ERROR "the job exited 0; every rank must fail")
endif()
if("${rc}" MATCHES "timeout" OR dt GREATER MAX_SECONDS)
  message(FATAL_ERROR "the job did not finish within ${MAX_SECONDS} s (${rc}): a hang")
endif()
foreach(bad "AddressSanitizer" "Segmentation fault" "exited on signal" "MPI_ERRORS_ARE_FATAL" "MPI_ABORT was invoked" "UNEXPECTED")
  if("${out}" MATCHES "${bad}")
    message(FATAL_ERROR "the job crashed or aborted (${bad}) instead of failing cleanly")
  endif()
endforeach()
foreach(re ${EXPECT})
  if(NOT "${out}" MATCHES "${re}")
    message(FATAL_ERROR "the output does not match: ${re}")
  endif()
endforeach()
message(STATUS "ok: exit ${rc} after ${dt} s, every expected message present")
