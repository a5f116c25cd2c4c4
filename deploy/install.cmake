# Install rules for the deployment kit. Include from the top-level CMakeLists.txt:
#   include(deploy/install.cmake)
#
# Where things land (relative to CMAKE_INSTALL_PREFIX unless absolute, GNUInstallDirs names):
#   ${PGTLS_SYSTEMD_UNIT_DIR}/pgtlsmon.service   default lib/systemd/system
#   ${PGTLS_SYSCONF_DEFAULT_DIR}/pgtlsmon        the flags file, default /etc/default
#   /etc/logrotate.d/pgtlsmon                    (PGTLS_LOGROTATE_DIR)
#   share/doc/pgtlsmon/                          deploy/README.md, docs/RUNBOOK.md
#   share/pgtlsmon/prometheus/                   scrape config example, alert + recording rules
#   share/pgtlsmon/grafana/                      dashboard JSON + provisioning examples
#   share/pgtlsmon/kubernetes/                   the manifests, for reference
#   share/man/man1/pgtlsmon.1.gz                 from --help by help2man (package.cmake)
#   share/doc/pgtlsmon/copyright, changelog.gz   Debian package documentation (package.cmake)
#
# Configuration files: CMake has no "noreplace" (RPM %config(noreplace), dpkg conffiles), so
# `cmake --install` OVERWRITES an edited /etc/default/pgtlsmon. Either keep local flags in a
# systemd drop-in (`systemctl edit pgtlsmon`, Environment=PGTLSMON_ARGS=...), install with
# -DPGTLS_INSTALL_CONFIG=OFF after the first time, or package with CPack/dpkg where the file is
# a conffile (deploy/package.cmake: `cpack -G DEB` makes the Debian package from these rules).
include_guard(GLOBAL)
include(GNUInstallDirs)

set(PGTLS_DEPLOY_DIR ${CMAKE_CURRENT_LIST_DIR})
option(PGTLS_INSTALL_CONFIG "Install /etc files (flags, logrotate); overwrites edited copies" ON)
set(PGTLS_SYSTEMD_UNIT_DIR "${CMAKE_INSTALL_LIBDIR}/systemd/system"
    CACHE PATH "Where pgtlsmon.service goes (prefix-relative or absolute)")
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(PGTLS_SYSTEMD_UNIT_DIR "/usr/lib/systemd/system" CACHE PATH "" FORCE)
endif()
set(PGTLS_SYSCONF_DEFAULT_DIR "/etc/default" CACHE PATH "Where the flags file pgtlsmon goes")
set(PGTLS_LOGROTATE_DIR "/etc/logrotate.d" CACHE PATH "Where the logrotate snippet goes")

# The unit names the binary by absolute path; point it at the installed one. The prefix is
# read at install time, so `cpack` (which installs under /usr) gets /usr/bin/pgtlsmon whatever
# CMAKE_INSTALL_PREFIX the build was configured with.
install(CODE "
  file(READ \"${PGTLS_DEPLOY_DIR}/systemd/pgtlsmon.service\" _pgtls_unit)
  string(REPLACE /usr/local/bin/pgtlsmon \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/pgtlsmon\"
         _pgtls_unit \"\${_pgtls_unit}\")
  file(WRITE \"${CMAKE_BINARY_DIR}/deploy/pgtlsmon.service\" \"\${_pgtls_unit}\")"
  COMPONENT deploy)
install(FILES ${CMAKE_BINARY_DIR}/deploy/pgtlsmon.service
        DESTINATION ${PGTLS_SYSTEMD_UNIT_DIR} COMPONENT deploy)

if(PGTLS_INSTALL_CONFIG)
  install(FILES ${PGTLS_DEPLOY_DIR}/systemd/pgtlsmon.env
          DESTINATION ${PGTLS_SYSCONF_DEFAULT_DIR} RENAME pgtlsmon
          PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ COMPONENT deploy)
  install(FILES ${PGTLS_DEPLOY_DIR}/systemd/pgtlsmon.logrotate
          DESTINATION ${PGTLS_LOGROTATE_DIR} RENAME pgtlsmon COMPONENT deploy)
endif()

install(FILES ${PGTLS_DEPLOY_DIR}/README.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME DEPLOY.md COMPONENT deploy)
install(FILES ${PGTLS_DEPLOY_DIR}/../docs/RUNBOOK.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT deploy)
install(FILES ${PGTLS_DEPLOY_DIR}/prometheus/prometheus.yml
              ${PGTLS_DEPLOY_DIR}/prometheus/pgtlsmon-alerts.yml
              ${PGTLS_DEPLOY_DIR}/prometheus/pgtlsmon-recording.yml
        DESTINATION ${CMAKE_INSTALL_DATADIR}/pgtlsmon/prometheus COMPONENT deploy)
install(DIRECTORY ${PGTLS_DEPLOY_DIR}/grafana/
        DESTINATION ${CMAKE_INSTALL_DATADIR}/pgtlsmon/grafana COMPONENT deploy)
install(DIRECTORY ${PGTLS_DEPLOY_DIR}/kubernetes/
        DESTINATION ${CMAKE_INSTALL_DATADIR}/pgtlsmon/kubernetes COMPONENT deploy
        # the replay Job's shell scripts stay runnable (lintian: script-not-executable)
        FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
        PATTERN "*.sh" PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                                   WORLD_READ WORLD_EXECUTE)

file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/deploy)
include(${PGTLS_DEPLOY_DIR}/package.cmake)
