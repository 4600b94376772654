# Install rules: headers, the exported plume::plume target, a config file that
# finds the same dependencies on the consumer's machine, and a version file.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(DIRECTORY include/plume DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS plume EXPORT plume-targets)
install(EXPORT plume-targets NAMESPACE plume:: FILE plume-targets.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/plume)

configure_package_config_file(cmake/plume-config.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/plume-config.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/plume)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/plume-config-version.cmake
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES
  ${CMAKE_CURRENT_BINARY_DIR}/plume-config.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/plume-config-version.cmake
  cmake/FindAsio.cmake
  cmake/FindLibUring.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/plume)
