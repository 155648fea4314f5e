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
  add_test(NAME interop_safetensors COMMAND sh -c "echo 'SKIP: python3 not found'; test \"\$CI\" != true || exit 1; exit 77")
endif()
set_tests_properties(interop_safetensors PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)

# The Hugging Face GPT-2 export of `dsc zero-to-fp32` (tests/interop/hf_gpt2_export.c, which
# links the command's source): hand-derived transposes, a trained GPT against its master,
# the tool's --layout and --hf-config, refusals. The same program is the helper of
# tests/interop/check_hf_gpt2.py, run twice: with numpy + safetensors (interop_hf_gpt2) and
# with torch + transformers (interop_transformers_gpt2: GPT2LMHeadModel loads the export and
# its logits equal dsc's). The latter runs under ${DSC_HF_PYTHON}, the first python that
# imports both (found at configure time; -DDSC_HF_PYTHON=<python> chooses one), and
# reports "SKIP: <reason>" (exit 77) without them; under CI=true that is a failure
# (tests/interop/interop_skip.py). `make test` passes its venv as both pythons.
add_executable(hf_gpt2_export ${PROJECT_SOURCE_DIR}/tests/interop/hf_gpt2_export.c
                              ${PROJECT_SOURCE_DIR}/tools/cmd_zero_to_fp32.c)
target_link_libraries(hf_gpt2_export PRIVATE dsc_testutil)
add_test(NAME ckpt_hf_gpt2_export COMMAND hf_gpt2_export WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(ckpt_hf_gpt2_export PROPERTIES TIMEOUT 120
                     ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive;OPENBLAS_NUM_THREADS=1")

if(NOT DEFINED DSC_HF_PYTHON)
  set(_dsc_hf_python "")
  foreach(py ${DSC_PYTHON3} /usr/bin/python3)
    if(NOT _dsc_hf_python AND EXISTS "${py}")
      execute_process(COMMAND ${py} -c "import numpy, safetensors, torch, transformers"
                      RESULT_VARIABLE _rc OUTPUT_QUIET ERROR_QUIET TIMEOUT 60)
      if(_rc EQUAL 0)
        set(_dsc_hf_python "${py}")
      endif()
    endif()
  endforeach()
  set(DSC_HF_PYTHON "${_dsc_hf_python}" CACHE STRING
      "python with torch and transformers for interop_transformers_gpt2 (empty: the test is skipped)")
endif()
set(_dsc_hf_args $<TARGET_FILE:hf_gpt2_export> $<TARGET_FILE:dsc_cli>)
if(DSC_PYTHON3)
  add_test(NAME interop_hf_gpt2
           COMMAND ${DSC_PYTHON3} ${PROJECT_SOURCE_DIR}/tests/interop/check_hf_gpt2.py numpy ${_dsc_hf_args}
                   ${CMAKE_BINARY_DIR}/interop_hf_gpt2_numpy
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
else()
  add_test(NAME interop_hf_gpt2 COMMAND sh -c "echo 'SKIP: python3 not found'; test \"\$CI\" != true || exit 1; exit 77")
endif()
if(DSC_HF_PYTHON)
  add_test(NAME interop_transformers_gpt2
           COMMAND ${DSC_HF_PYTHON} ${PROJECT_SOURCE_DIR}/tests/interop/check_hf_gpt2.py transformers ${_dsc_hf_args}
                   ${CMAKE_BINARY_DIR}/interop_hf_gpt2_transformers
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
else()
  add_test(NAME interop_transformers_gpt2
           COMMAND sh -c "echo 'SKIP: no python with torch and transformers was found at configure time (tried: ${DSC_PYTHON3} /usr/bin/python3); pip install torch transformers, then reconfigure with -DDSC_HF_PYTHON=<that python>'; test \"\$CI\" != true || exit 1; exit 77")
endif()
set_tests_properties(interop_hf_gpt2 interop_transformers_gpt2 PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 180
                     ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1")

# End to end: a checkpoint written by `dsc train --save` exports in the Hugging Face GPT-2
# layout by default (its client state records the model), with the GPT2Config beside it.
add_test(NAME cli_zero_to_fp32_hf
         COMMAND sh -c "d=$(mktemp -d) && $<TARGET_FILE:dsc_cli> train --layers 2 --heads 2 --embd 32 --context 16 --steps 2 --eval-every 0 --data README.md --save $d/ck > /dev/null && \
mkdir $d/hf && $<TARGET_FILE:dsc_cli> zero-to-fp32 $d/ck $d/hf/model.safetensors --hf-config $d/hf/config.json && \
grep -q '\"n_head\": 2' $d/hf/config.json && echo EXPORT-OK; rm -rf $d"
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli_zero_to_fp32_hf PROPERTIES
  PASS_REGULAR_EXPRESSION "28 tensors.*layout hf-gpt2 \\(auto: [^\n]*2 layers, n_embd 32[^\n]*8 weights transposed.*EXPORT-OK"
  ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive")
