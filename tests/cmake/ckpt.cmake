# Checkpoint-layer tests beyond tests/unit/test_*.c: the safetensors interop check against
# the Hugging Face `safetensors` Python package. The C helper writes and reads files; the
# Python script (tests/interop/check_safetensors.py) compares. Without python3, numpy or
# safetensors the test reports "SKIP: <reason>" and returns 77, which ctest counts as skipped.
add_executable(st_interop_helper ${PROJECT_SOURCE_DIR}/tests/interop/st_interop_helper.c)
target_link_libraries(st_interop_helper PRIVATE dsc)

find_program(DSC_PYTHON3 NAMES python3)
if(DSC_PYTHON3)
  add_test(NAME interop_safetensors
           COMMAND ${DSC_PYTHON3} ${PROJECT_SOURCE_DIR}/tests/interop/check_safetensors.py
                   $<TARGET_FILE:st_interop_helper> ${CMAKE_BINARY_DIR}/interop_safetensors
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
else()
  add_test(NAME interop_safetensors COMMAND sh -c "echo 'SKIP: python3 not found'; exit 77")
endif()
set_tests_properties(interop_safetensors PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
