# cmake --install: bin/qkv; libqkv, its public headers (include/qkv, exactly the public API),
# a CMake package (find_package(qkv) -> qkv::qkv) and a pkg-config file; the docs and the example
# configs; the man page, generated from the command's own help; the bash completion.
# cpack -G DEB packs the same into a .deb.
include(CMakePackageConfigHelpers)
set(QKV_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/qkv)

install(TARGETS qkv RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS qkv_lib EXPORT qkvTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} NAMELINK_COMPONENT Development)
install(DIRECTORY include/qkv DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT qkvTargets NAMESPACE qkv:: DESTINATION ${QKV_CMAKE_DIR})
configure_package_config_file(cmake/qkvConfig.cmake.in ${PROJECT_BINARY_DIR}/qkvConfig.cmake
                              INSTALL_DESTINATION ${QKV_CMAKE_DIR})
# 0.x: a minor release may change the API, so only the same minor version is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/qkvConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/qkvConfig.cmake ${PROJECT_BINARY_DIR}/qkvConfigVersion.cmake
        DESTINATION ${QKV_CMAKE_DIR})
file(RELATIVE_PATH QKV_PC_TO_PREFIX /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
configure_file(cmake/qkv.pc.in ${PROJECT_BINARY_DIR}/qkv.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/qkv.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY configs/ DESTINATION ${CMAKE_INSTALL_DATADIR}/qkv/configs)
install(FILES scripts/qkv-completion.bash RENAME qkv
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)

# qkv(1): help2man over `qkv --help` and `--version`, with each command's --help as a section.
find_program(HELP2MAN help2man)
qkv_require(HELP2MAN help2man "help2man (qkv's man page)")
set(QKV_MAN_PAGE ${PROJECT_BINARY_DIR}/qkv.1)
add_custom_command(OUTPUT ${QKV_MAN_PAGE}
                   COMMAND ${CMAKE_COMMAND} -DQKV=$<TARGET_FILE:qkv> -DHELP2MAN=${HELP2MAN}
                           -DOUT=${QKV_MAN_PAGE} -P ${PROJECT_SOURCE_DIR}/cmake/man_page.cmake
                   DEPENDS qkv cmake/man_page.cmake
                   COMMENT "Writing the man page qkv(1)")
add_custom_target(qkv_man_page ALL DEPENDS ${QKV_MAN_PAGE})
install(FILES ${QKV_MAN_PAGE} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

# ---- cpack -G DEB (from the build directory) ----
set(CPACK_PACKAGE_NAME qkv)
set(CPACK_PACKAGE_VENDOR "the qkv developers")
set(CPACK_PACKAGE_CONTACT "qkv developers <qkv@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "train small transformers on character-level text, on CPUs")
set(CPACK_PACKAGE_DESCRIPTION
    "qkv trains encoder, decoder and encoder-decoder transformers on your own text, on ordinary "
    "CPUs, samples and serves them. It ships the qkv command, libqkv with its C++ headers, a CMake "
    "package (find_package(qkv)) and a pkg-config file.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
# The dependencies are read from the binaries (dpkg-shlibdeps, from dpkg-dev); libqkv is the
# package's own library.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
# shlibdeps says libopenblas0, which any of its builds satisfies; qkv links the OpenMP one (its
# RPATH names that directory), so its loops and OpenBLAS share one thread pool.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libopenblas0-openmp")
# The headers include fmt's and nlohmann-json's, which a C++ program using libqkv then needs.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "libfmt-dev, nlohmann-json3-dev")
set(CPACK_GENERATOR DEB)
include(CPack)
