# Install rules for plugin authors: the public header, a pkg-config file and a
# CMake package, so a plugin builds out of tree against an installed tunebench
# (docs/plugins.md, docs/examples/). Included from the top-level CMakeLists.txt.
#
#   <prefix>/include/tunebench/tunebench_plugin.h (+ tunebench_status.h, which it includes)
#   <prefix>/<libdir>/pkgconfig/tunebench.pc          Cflags: -I${includedir}/tunebench; variable pluginsdir
#   <prefix>/<libdir>/cmake/tunebench/tunebenchConfig.cmake (+ version, targets)
#       tunebench::plugin (INTERFACE: the include directory) and
#       tunebench_add_plugin(name sources...)
#
# Every installed path is relative to the prefix, so `cmake --install build
# --prefix DIR` gives a working tree anywhere.
include(CMakePackageConfigHelpers)

# the plugin ABI version, from the header itself
file(STRINGS ${CMAKE_SOURCE_DIR}/include/tunebench/tunebench_plugin.h TB_ABI_LINES REGEX "^#define TB_PLUGIN_ABI_M(AJ|IN)OR ")
string(REGEX REPLACE ".*TB_PLUGIN_ABI_MAJOR ([0-9]+).*" "\\1" TB_PLUGIN_ABI_MAJOR "${TB_ABI_LINES}")
string(REGEX REPLACE ".*TB_PLUGIN_ABI_MINOR ([0-9]+).*" "\\1" TB_PLUGIN_ABI_MINOR "${TB_ABI_LINES}")

set(TB_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR}/tunebench)
set(TB_INSTALL_PLUGINDIR ${CMAKE_INSTALL_LIBDIR}/tunebench/plugins)
set(TB_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/tunebench)
set(TB_INSTALL_PKGCONFIGDIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

install(FILES ${CMAKE_SOURCE_DIR}/include/tunebench/tunebench_plugin.h
              ${CMAKE_SOURCE_DIR}/include/tunebench/tunebench_status.h DESTINATION ${TB_INSTALL_INCLUDEDIR})

# tunebench::plugin: usable in this tree too (the header's folder) and exported
add_library(tunebench_plugin_api INTERFACE)
target_include_directories(tunebench_plugin_api INTERFACE
  $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/include/tunebench>
  $<INSTALL_INTERFACE:${TB_INSTALL_INCLUDEDIR}>)
set_target_properties(tunebench_plugin_api PROPERTIES EXPORT_NAME plugin)
add_library(tunebench::plugin ALIAS tunebench_plugin_api)
install(TARGETS tunebench_plugin_api EXPORT tunebenchTargets)
install(EXPORT tunebenchTargets NAMESPACE tunebench:: DESTINATION ${TB_INSTALL_CMAKEDIR})

configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/tunebenchConfig.cmake.in
  ${CMAKE_BINARY_DIR}/cmake/tunebenchConfig.cmake
  INSTALL_DESTINATION ${TB_INSTALL_CMAKEDIR}
  PATH_VARS TB_INSTALL_INCLUDEDIR TB_INSTALL_PLUGINDIR)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/cmake/tunebenchConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_BINARY_DIR}/cmake/tunebenchConfig.cmake ${CMAKE_BINARY_DIR}/cmake/tunebenchConfigVersion.cmake
        DESTINATION ${TB_INSTALL_CMAKEDIR})

# pkg-config: the prefix is found from the .pc file's own location
if(IS_ABSOLUTE "${TB_INSTALL_PKGCONFIGDIR}")
  message(FATAL_ERROR "tunebench: CMAKE_INSTALL_LIBDIR must be relative to the prefix for tunebench.pc")
endif()
file(RELATIVE_PATH TB_PC_TO_PREFIX /prefix/${TB_INSTALL_PKGCONFIGDIR} /prefix)
string(REGEX REPLACE "/$" "" TB_PC_TO_PREFIX "${TB_PC_TO_PREFIX}")
set(TB_PC_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR})
set(TB_PC_LIBDIR ${CMAKE_INSTALL_LIBDIR})
configure_file(${CMAKE_SOURCE_DIR}/cmake/tunebench.pc.in ${CMAKE_BINARY_DIR}/cmake/tunebench.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/cmake/tunebench.pc DESTINATION ${TB_INSTALL_PKGCONFIGDIR})
