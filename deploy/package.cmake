# The Debian package, made by CPack's DEB generator from the same install() rules as
# `cmake --install` (deploy/install.cmake, app/): `cpack -G DEB` in the build directory writes
# package/pgtlsmon_<version>_<arch>.deb. Why CPack and not dpkg-buildpackage: the install rules
# already say where every file goes, and dpkg-buildpackage would need a second copy of them in
# debian/rules; CPack calls dpkg-shlibdeps for Depends (CPACK_DEBIAN_PACKAGE_SHLIBDEPS), so a new
# library linked into pgtlsmon reaches Depends without an edit here. What dpkg-buildpackage would
# add (a source package, debhelper's maintainer-script snippets) is written by hand in
# deploy/debian/. Test: deploy/tests/check_package.sh (CTest deploy_package).
include_guard(GLOBAL)
include(GNUInstallDirs)

# Documentation every Debian package carries: copyright, changelog, the man page, and the
# lintian overrides (each explained in deploy/debian/lintian-overrides).
set(_pgtls_deb ${CMAKE_CURRENT_LIST_DIR}/debian)
execute_process(COMMAND gzip -9nc ${_pgtls_deb}/changelog
                OUTPUT_FILE ${CMAKE_BINARY_DIR}/deploy/changelog.gz COMMAND_ERROR_IS_FATAL ANY)
install(FILES ${_pgtls_deb}/copyright ${CMAKE_BINARY_DIR}/deploy/changelog.gz
        DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT deploy)
install(FILES ${_pgtls_deb}/lintian-overrides
        DESTINATION ${CMAKE_INSTALL_DATADIR}/lintian/overrides RENAME pgtlsmon COMPONENT deploy)

find_program(PGTLS_HELP2MAN help2man)
if(TARGET pgtlsmon AND PGTLS_HELP2MAN)
  set(_pgtls_man ${CMAKE_BINARY_DIR}/deploy/man/pgtlsmon.1.gz)
  add_custom_command(OUTPUT ${_pgtls_man}
    COMMAND ${CMAKE_COMMAND} -DHELP2MAN=${PGTLS_HELP2MAN} -DBIN=$<TARGET_FILE:pgtlsmon>
            -DOUT=${_pgtls_man} -P ${_pgtls_deb}/manpage.cmake
    DEPENDS pgtlsmon ${_pgtls_deb}/manpage.cmake
    COMMENT "pgtlsmon.1 from --help (help2man)")
  add_custom_target(pgtlsmon_manpage ALL DEPENDS ${_pgtls_man})
  install(FILES ${_pgtls_man} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT deploy)
elseif(TARGET pgtlsmon)
  message(STATUS "help2man not found: no man page (the package would lack pgtlsmon.1)")
endif()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME pgtlsmon)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "pgtlsmon maintainers <maintainers@users.noreply.github.com>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "passive TLS monitor for PostgreSQL")
# CPack writes the summary as the first line of Description and indents this text under it.
set(CPACK_PACKAGE_DESCRIPTION
    "pgtlsmon watches PostgreSQL connections from the side (libpcap or an eBPF
socket filter) and reports, per connection, the TLS version and cipher
negotiated, failed handshakes and sessions in clear, as Prometheus metrics
and JSON session records. It never sends a packet to the server. It also
replays capture files for forensic audits.

This package holds the daemon, a hardened systemd unit (not enabled until
/etc/default/pgtlsmon names the interface), Prometheus alert and recording
rules and a Grafana dashboard.")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE https://github.com/pgtlsmon/pgtlsmon)
# Depends: the shared libraries' packages from dpkg-shlibdeps, plus adduser for postinst.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS adduser)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${_pgtls_deb}/postinst ${_pgtls_deb}/prerm ${_pgtls_deb}/postrm ${_pgtls_deb}/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_OUTPUT_FILE_PREFIX ${CMAKE_BINARY_DIR}/package)
set(CPACK_THREADS 1)
include(CPack)
