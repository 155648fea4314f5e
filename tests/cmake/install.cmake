# The install rules (cmake/install.cmake) as a user of the library meets them: install into a
# temporary prefix, build examples/train_gpt.c out of tree through find_package(dsc) and through
# pkg-config, run it, and add dsc to a parent project (tests/install/check_install.sh). Not under
# the sanitizer build (label nosanitize): a program built out of tree without -fsanitize cannot
# link an instrumented libdsc.
if(DSC_INSTALL)
  get_target_property(_dsc_soversion dsc_shared SOVERSION)
  add_test(NAME install_out_of_tree
           COMMAND sh ${PROJECT_SOURCE_DIR}/tests/install/check_install.sh ${CMAKE_BINARY_DIR} ${PROJECT_SOURCE_DIR}
                   ${CMAKE_INSTALL_LIBDIR} libdsc.so.${_dsc_soversion} ${CMAKE_BINARY_DIR}/install_out_of_tree
                   ${CMAKE_C_COMPILER}
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(install_out_of_tree PROPERTIES TIMEOUT 600 LABELS nosanitize
    ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive;OPENBLAS_NUM_THREADS=1"
    PASS_REGULAR_EXPRESSION "SONAME libdsc\\.so\\.${_dsc_soversion}\n.*find_package dsc::dsc: train_gpt: 30 optimizer steps.*find_package dsc::dsc_static: train_gpt: 30 optimizer steps.*pkg-config: train_gpt: 30 optimizer steps.*parent project configured.*INSTALL-OK")
endif()
