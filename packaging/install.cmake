# weft's install rules (included by the top-level CMakeLists.txt):
#
#   include/weft.h, include/weft_platform.h
#   LIBDIR/libweft.so.MAJOR.MINOR.PATCH (SONAME libweft.so.MAJOR) with the links
#     libweft.so.MAJOR and libweft.so, and LIBDIR/libweft.a
#   LIBDIR/weft/plugins/libweft_native.so, libweft_green.so, libweft_sim.so,
#     libweft_pthread.so: where libweft looks for a platform by name after "next to
#     libweft" and before $WEFT_PLUGIN_PATH
#   bin/weft-sim: the sim platform's driver (explore seeds, replay one)
#   LIBDIR/pkgconfig/weft.pc, weft-static.pc
#   LIBDIR/cmake/weft/weftConfig.cmake, weftConfigVersion.cmake (weft::weft, weft::weft_static)
#   share/doc/weft/: the README, the CHANGELOG, docs/ and the two licences
#
# libweft is built by cargo, so the libraries are installed as files and the parts that
# depend on the install prefix (the links, the .pc files, the plugin directory inside
# libweft.a) are made by packaging/install_finish.cmake when `cmake --install` runs,
# with the prefix given then (`--prefix P`), not the one configured.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(WEFT_PLUGIN_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/weft/plugins)
set(WEFT_CMAKE_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/weft)
option(WEFT_INSTALL_STRIP "Strip debug information from the installed libraries (not in Debug builds)" ON)
set(weft_strip OFF)
if(WEFT_INSTALL_STRIP AND NOT CMAKE_BUILD_TYPE STREQUAL "Debug" AND CMAKE_STRIP)
  set(weft_strip ON)
endif()

# Writes the installed-plugin-directory slot of libweft.a (see core/plugin_dirs.rs).
add_executable(weft_set_plugin_dir ${CMAKE_CURRENT_LIST_DIR}/set_plugin_dir.c)
target_compile_options(weft_set_plugin_dir PRIVATE ${WEFT_WARNINGS})

set(weft_exe_perms OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
install(FILES ${PROJECT_SOURCE_DIR}/include/weft.h ${PROJECT_SOURCE_DIR}/include/weft_platform.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${WEFT_LIB_DIR}/libweft.so
  DESTINATION ${CMAKE_INSTALL_LIBDIR} RENAME libweft.so.${PROJECT_VERSION} PERMISSIONS ${weft_exe_perms})
install(FILES ${WEFT_LIB_DIR}/libweft.a DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${WEFT_LIB_DIR}/libweft_native.so ${WEFT_LIB_DIR}/libweft_green.so ${WEFT_LIB_DIR}/libweft_sim.so
  DESTINATION ${WEFT_PLUGIN_INSTALL_DIR} PERMISSIONS ${weft_exe_perms})
install(PROGRAMS ${WEFT_LIB_DIR}/weft-sim DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS weft_pthread LIBRARY DESTINATION ${WEFT_PLUGIN_INSTALL_DIR} PERMISSIONS ${weft_exe_perms})

# The CMake package: relocatable (paths relative to weftConfig.cmake itself).
file(RELATIVE_PATH WEFT_CONFIG_TO_PREFIX /weft-root/${WEFT_CMAKE_INSTALL_DIR} /weft-root)
configure_file(${CMAKE_CURRENT_LIST_DIR}/weftConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/weftConfig.cmake @ONLY)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/weftConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/weftConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/weftConfigVersion.cmake
  DESTINATION ${WEFT_CMAKE_INSTALL_DIR})

set(weft_docs ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/CHANGELOG.md
  ${PROJECT_SOURCE_DIR}/LICENSE-MIT ${PROJECT_SOURCE_DIR}/LICENSE-APACHE)
file(GLOB weft_doc_pages ${PROJECT_SOURCE_DIR}/docs/*.md ${PROJECT_SOURCE_DIR}/docs/*.svg)
install(FILES ${weft_docs} DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${weft_doc_pages} DESTINATION ${CMAKE_INSTALL_DOCDIR}/docs)

set(WEFT_SET_PLUGIN_DIR "$<TARGET_FILE:weft_set_plugin_dir>")
configure_file(${CMAKE_CURRENT_LIST_DIR}/install_finish.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/weft_install_finish.cmake.gen @ONLY)
file(GENERATE OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/weft_install_finish.cmake
  INPUT ${CMAKE_CURRENT_BINARY_DIR}/weft_install_finish.cmake.gen)
install(SCRIPT ${CMAKE_CURRENT_BINARY_DIR}/weft_install_finish.cmake)
