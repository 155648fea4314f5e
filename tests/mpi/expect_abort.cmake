# Runs an MPI program that must abort, and checks how: cmake -P with
#   -DMPIEXEC=<mpirun> -DNP=<ranks> -DPROG=<program> -DARGS=<arg;...> -DMAX_SECONDS=<s>
#   -DEXPECT=<regex;...> (every regex must match the combined output)
# Fails when the job exits 0, runs past MAX_SECONDS, misses an expected message, or
# prints UNEXPECTED.
foreach(v MPIEXEC NP PROG MAX_SECONDS EXPECT)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "expect_abort.cmake: ${v} is not set")
  endif()
endforeach()
string(TIMESTAMP t0 "%s")
execute_process(
  COMMAND ${MPIEXEC} -np ${NP} --oversubscribe ${PROG} ${ARGS}
  RESULT_VARIABLE rc
  OUTPUT_VARIABLE out
  ERROR_VARIABLE out
  TIMEOUT ${MAX_SECONDS})
string(TIMESTAMP t1 "%s")
math(EXPR dt "${t1} - ${t0}")
message("---- output of mpirun -np ${NP} ${PROG} ${ARGS} (exit ${rc}, ${dt} s) ----\n${out}----")
if("${rc}" STREQUAL "0")
  message(FATAL_ERROR "the job exited 0; it must abort when a rank never arrives")
endif()
# A non-numeric result is either our TIMEOUT firing (a hang: failure) or mpirun ending
# on a signal (OpenMPI 4.1's mpirun sometimes crashes in PMIx teardown after MPI_Abort
# while a rank sits in MPI_Finalize): still a non-zero exit of the job.
if("${rc}" MATCHES "timeout")
  message(FATAL_ERROR "mpirun did not finish within ${MAX_SECONDS} s: ${rc}")
endif()
if(dt GREATER MAX_SECONDS)
  message(FATAL_ERROR "the job took ${dt} s (limit ${MAX_SECONDS} s)")
endif()
foreach(re ${EXPECT})
  if(NOT "${out}" MATCHES "${re}")
    message(FATAL_ERROR "the output does not match: ${re}")
  endif()
endforeach()
if("${out}" MATCHES "UNEXPECTED")
  message(FATAL_ERROR "a rank got past the collective that must time out")
endif()
message(STATUS "ok: exit ${rc} after ${dt} s, every expected message present")
