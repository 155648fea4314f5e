# Install rules (`cmake --install build --prefix P`, `make install PREFIX=P`):
#   lib/libdsc.so.<version> (SONAME libdsc.so.<major>.<minor>), lib/libdsc.a, include/dsc/,
#   bin/dsc, lib/cmake/dsc/ (find_package(dsc): dsc::dsc shared, dsc::dsc_static) and
#   lib/pkgconfig/dsc.pc (pkg-config --cflags --libs dsc; --static for libdsc.a).
# tests/cmake/install.cmake builds examples/train_gpt.c against an installed prefix both ways.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set_target_properties(dsc_shared PROPERTIES EXPORT_NAME dsc)
set_target_properties(dsc PROPERTIES EXPORT_NAME dsc_static)
target_include_directories(dsc_shared INTERFACE $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_include_directories(dsc INTERFACE $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)

install(TARGETS dsc_shared dsc EXPORT dsc-targets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS dsc_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/dsc DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.h")

set(DSC_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/dsc)
install(EXPORT dsc-targets NAMESPACE dsc:: DESTINATION ${DSC_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/dsc-config.cmake.in
                              ${CMAKE_BINARY_DIR}/dsc-config.cmake INSTALL_DESTINATION ${DSC_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/dsc-config-version.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/dsc-config.cmake ${CMAKE_BINARY_DIR}/dsc-config-version.cmake
        DESTINATION ${DSC_CMAKE_DIR})

# pkg-config: the shared library by default; jansson and openblas through Requires.private
# and MPI/OpenMP as Libs.private, so `pkg-config --static --libs dsc` links libdsc.a.
set(DSC_PC_LIBS_PRIVATE "")
foreach(lib ${MPI_C_LIBRARIES})
  string(APPEND DSC_PC_LIBS_PRIVATE " ${lib}")
endforeach()
string(APPEND DSC_PC_LIBS_PRIVATE " ${OpenMP_C_FLAGS} -lpthread -lm")
if(DSC_URING_LIBS) # the NVMe offload's io_uring
  string(APPEND DSC_PC_LIBS_PRIVATE " -luring")
endif()
if(DSC_CUDA) # the CUDA device: the static runtime and cuBLASLt (libdsc.a only)
  string(APPEND DSC_PC_LIBS_PRIVATE " -L${CUDAToolkit_LIBRARY_DIR} -lcublasLt -lcudart_static -ldl -lrt -lstdc++")
endif()
# The prefix is only known at install time (cmake --install --prefix P), so the file is
# written then, from the template configured here.
configure_file(${PROJECT_SOURCE_DIR}/cmake/dsc.pc.in ${CMAKE_BINARY_DIR}/dsc.pc.in @ONLY)
install(CODE "
  file(READ \"${CMAKE_BINARY_DIR}/dsc.pc.in\" _dsc_pc)
  string(REPLACE \"%PREFIX%\" \"\${CMAKE_INSTALL_PREFIX}\" _dsc_pc \"\${_dsc_pc}\")
  file(WRITE \"${CMAKE_BINARY_DIR}/dsc.pc\" \"\${_dsc_pc}\")")
install(FILES ${CMAKE_BINARY_DIR}/dsc.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
