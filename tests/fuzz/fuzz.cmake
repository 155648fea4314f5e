# libFuzzer targets (included by the top CMakeLists.txt when DSC_BUILD_FUZZ=ON; needs clang).
# The library is compiled a second time here with -fsanitize=fuzzer-no-link,address,undefined
# into dsc_fuzz_lib, and every tests/fuzz/fuzz_*.c becomes ${CMAKE_BINARY_DIR}/fuzz/<name>,
# linked with -fsanitize=fuzzer,address,undefined. scripts/fuzz.sh runs them (`make fuzz`,
# `make fuzz-smoke`) with the seed corpus tests/fuzz/corpus/<name without fuzz_>/.
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(WARNING "DSC_BUILD_FUZZ needs clang (configure with CC=clang); fuzz targets skipped")
  return()
endif()

set(DSC_FUZZ_FLAGS -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g)
set(DSC_FUZZ_LINK_FLAGS -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)

add_library(dsc_fuzz_lib STATIC ${DSC_SOURCES})
target_compile_options(dsc_fuzz_lib PRIVATE ${DSC_FUZZ_FLAGS})
target_include_directories(dsc_fuzz_lib PUBLIC ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(dsc_fuzz_lib PUBLIC PkgConfig::JANSSON PkgConfig::OPENBLAS OpenMP::OpenMP_C Threads::Threads m)

file(GLOB DSC_FUZZ_TARGETS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_*.c)
# `make fuzz` builds only this (the fuzz build dir does not need the tools and benches).
add_custom_target(dsc_fuzz_all)
foreach(src ${DSC_FUZZ_TARGETS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz OUTPUT_NAME ${name})
  target_compile_options(${name} PRIVATE ${DSC_FUZZ_FLAGS})
  target_link_options(${name} PRIVATE ${DSC_FUZZ_LINK_FLAGS})
  target_link_libraries(${name} PRIVATE dsc_fuzz_lib)
  add_dependencies(dsc_fuzz_all ${name})
endforeach()
