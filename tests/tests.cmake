# Test registration. Every tests/unit/test_*.c is one program and one ctest test, run
# with one OpenMP thread by default (ctest runs tests in parallel on 2 cores; tests of
# thread-count independence set their thread counts themselves),
# from the source tree so it can read tests/golden and tests/configs.
add_library(dsc_testutil STATIC ${PROJECT_SOURCE_DIR}/tests/common/check.c ${PROJECT_SOURCE_DIR}/tests/common/gradcheck.c
            ${PROJECT_SOURCE_DIR}/tests/common/zero_check.c ${PROJECT_SOURCE_DIR}/tests/common/comm_check.c)
target_include_directories(dsc_testutil PUBLIC ${PROJECT_SOURCE_DIR}/tests/common ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(dsc_testutil PUBLIC dsc)

file(GLOB DSC_UNIT_TESTS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/unit/test_*.c)
foreach(src ${DSC_UNIT_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_link_libraries(${name} PRIVATE dsc_testutil)
  add_test(NAME ${name} COMMAND ${name} WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(${name} PROPERTIES TIMEOUT 300 ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive;OPENBLAS_NUM_THREADS=1")
endforeach()

# Extra tests (CLI runs, mpirun tests) are declared by each area's own .cmake file.
file(GLOB DSC_TEST_CMAKE CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/cmake/*.cmake)
foreach(f ${DSC_TEST_CMAKE})
  include(${f})
endforeach()

# Every TIMEOUT above is a hang guard, not a speed check: under the sanitizers, or on a machine
# shared with other jobs, a test runs several times slower (test_zero_fake took over 300 s under
# ASan with the 2-core machine at load 20). So each is multiplied by DSC_TEST_TIMEOUT_SCALE
# (default 4 with DSC_SANITIZE, 2 otherwise), after every tests/cmake file (some declare
# their tests deferred) has run.
if(NOT DEFINED DSC_TEST_TIMEOUT_SCALE)
  if(DSC_SANITIZE)
    set(DSC_TEST_TIMEOUT_SCALE 4)
  else()
    set(DSC_TEST_TIMEOUT_SCALE 2)
  endif()
endif()
function(dsc_scale_test_timeouts)
  get_property(tests DIRECTORY ${PROJECT_SOURCE_DIR} PROPERTY TESTS)
  foreach(t ${tests})
    get_test_property(${t} TIMEOUT to)
    if(to)
      math(EXPR to "${to} * ${DSC_TEST_TIMEOUT_SCALE}")
      set_tests_properties(${t} PROPERTIES TIMEOUT ${to})
    endif()
  endforeach()
endfunction()
if(CMAKE_VERSION VERSION_GREATER_EQUAL 3.19)
  cmake_language(DEFER CALL dsc_scale_test_timeouts)
else()
  dsc_scale_test_timeouts()
endif()
