# Installing libpreforkd the way libraries people already use are installed:
#   include/preforkd/*.hpp                    the public API (and nothing internal)
#   lib/libpreforkd.a, lib/libpreforkd.so.X.Y the library (SONAME libpreforkd.so.X.Y)
#   lib/cmake/preforkd/preforkdConfig*.cmake  find_package(preforkd CONFIG)
#   lib/pkgconfig/preforkd.pc                 pkg-config --cflags --libs preforkd
include(CMakePackageConfigHelpers)

install(DIRECTORY include/preforkd DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.hpp")
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/generated/preforkd/version.hpp
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/preforkd)
install(TARGETS preforkd_static preforkd_shared EXPORT preforkdTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} NAMELINK_COMPONENT development
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(PREFORKD_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/preforkd)
install(EXPORT preforkdTargets NAMESPACE preforkd:: DESTINATION ${PREFORKD_CMAKE_DIR})
configure_package_config_file(cmake/preforkdConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/preforkdConfig.cmake
  INSTALL_DESTINATION ${PREFORKD_CMAKE_DIR})
# 0.x: a minor release may change the API (see PREFORKD_SOVERSION), so a request
# for 0.1 is met by 0.1.z only; from 1.0, SameMajorVersion.
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/preforkdConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/preforkdConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/preforkdConfigVersion.cmake
  DESTINATION ${PREFORKD_CMAKE_DIR})

file(RELATIVE_PATH PREFORKD_PC_TO_PREFIX "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
configure_file(cmake/preforkd.pc.in ${CMAKE_CURRENT_BINARY_DIR}/preforkd.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/preforkd.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
