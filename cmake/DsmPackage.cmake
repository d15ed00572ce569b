# DsmPackage.cmake - install rules and the two ways outside programs find dsm:
# a pkg-config file (dsm.pc) and a CMake package (find_package(dsm) -> dsm::dsm).
# Included at the end of the top-level CMakeLists.txt, once every target exists.
#
# Installed layout: bin/{dsmrun,dsm-compare,bench-models}, libexec/dsm/dsmd (started by
# dsmrun and libdsm, never by hand), lib/libdsm.so*, include/dsm/dsm.h, share/man/man{1,3},
# lib/pkgconfig/dsm.pc, lib/cmake/dsm/{dsmConfig,dsmConfigVersion,dsmTargets*}.cmake
include(CMakePackageConfigHelpers)

set(DSM_CMAKE_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/dsm)
set(DSM_PKG_DIR ${CMAKE_BINARY_DIR}/cmake)

# The installed dsmd finds libdsm's dependencies beside it, whatever the prefix.
set(DSM_INSTALL_LIBEXECDIR ${CMAKE_INSTALL_LIBEXECDIR}/dsm)
file(RELATIVE_PATH _dsm_exec_to_lib ${CMAKE_INSTALL_FULL_LIBEXECDIR}/dsm ${CMAKE_INSTALL_FULL_LIBDIR})

if(TARGET dsmd)
  set_target_properties(dsmd PROPERTIES INSTALL_RPATH "$ORIGIN/${_dsm_exec_to_lib}")
  install(TARGETS dsmd RUNTIME DESTINATION ${DSM_INSTALL_LIBEXECDIR})
endif()

install(FILES ${PROJECT_SOURCE_DIR}/docs/man/dsmrun.1 ${PROJECT_SOURCE_DIR}/docs/man/dsm-compare.1
              ${PROJECT_SOURCE_DIR}/docs/man/dsm-report.1
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${PROJECT_SOURCE_DIR}/docs/man/libdsm.3 DESTINATION ${CMAKE_INSTALL_MANDIR}/man3)

if(TARGET dsm)
  install(TARGETS dsm EXPORT dsmTargets
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
          INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  # dsm.h (and its version header) are the only installed headers: libdsm/common and the
  # daemon stay private.
  install(FILES ${PROJECT_SOURCE_DIR}/libdsm/include/dsm/dsm.h
                ${PROJECT_BINARY_DIR}/libdsm/include/dsm/dsm_version.h
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/dsm)

  # CMake package: relocatable config, exported target dsm::dsm, version file.
  install(EXPORT dsmTargets NAMESPACE dsm:: FILE dsmTargets.cmake
          DESTINATION ${DSM_CMAKE_INSTALL_DIR})
  configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/dsmConfig.cmake.in
                                ${DSM_PKG_DIR}/dsmConfig.cmake
                                INSTALL_DESTINATION ${DSM_CMAKE_INSTALL_DIR}
                                PATH_VARS CMAKE_INSTALL_INCLUDEDIR CMAKE_INSTALL_BINDIR DSM_INSTALL_LIBEXECDIR)
  write_basic_package_version_file(${DSM_PKG_DIR}/dsmConfigVersion.cmake
                                   VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
  install(FILES ${DSM_PKG_DIR}/dsmConfig.cmake ${DSM_PKG_DIR}/dsmConfigVersion.cmake
          DESTINATION ${DSM_CMAKE_INSTALL_DIR})

  # pkg-config: written at install time so its paths name the prefix actually installed to
  # (cmake --install --prefix P may differ from the configured CMAKE_INSTALL_PREFIX).
  set(_dsm_pc_in ${CMAKE_CURRENT_LIST_DIR}/dsm.pc.in)
  install(CODE "
    set(DSM_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
    set(DSM_PC_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
    set(DSM_PC_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
    set(DSM_PC_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
    set(DSM_PC_VERSION \"${PROJECT_VERSION}\")
    foreach(_d LIBDIR INCLUDEDIR BINDIR)
      if(NOT IS_ABSOLUTE \"\${DSM_PC_\${_d}}\")
        set(DSM_PC_\${_d} \"\\\${prefix}/\${DSM_PC_\${_d}}\")
      endif()
    endforeach()
    string(MD5 _dsm_pc_tag \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}\")
    set(_dsm_pc \"${DSM_PKG_DIR}/pc-\${_dsm_pc_tag}/dsm.pc\")
    configure_file(\"${_dsm_pc_in}\" \"\${_dsm_pc}\" @ONLY)
    file(INSTALL DESTINATION \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig\"
         TYPE FILE FILES \"\${_dsm_pc}\")
    get_filename_component(_dsm_pc_dir \"\${_dsm_pc}\" DIRECTORY)
    file(REMOVE_RECURSE \"\${_dsm_pc_dir}\")
  ")
endif()
