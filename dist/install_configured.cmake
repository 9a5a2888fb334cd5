# Run by cmake --install (and cpack): writes the files that name the
# install prefix (pond-client.pc, pond.service) for the prefix given at
# install time (--prefix P, or /usr in a package), under DESTDIR.
# Set before this runs: POND_DIST_DIR, POND_VERSION, POND_LIBDIR,
# POND_INCLUDEDIR, POND_BINDIR, POND_DOCDIR, POND_MSGPACK_MODULE.
set (POND_PREFIX "${CMAKE_INSTALL_PREFIX}")
foreach (pair "pond-client.pc.in=${POND_LIBDIR}/pkgconfig/pond-client.pc"
              "pond.service.in=lib/systemd/system/pond.service")
    string (REPLACE "=" ";" pair "${pair}")
    list (GET pair 0 template)
    list (GET pair 1 target)
    set (target "$ENV{DESTDIR}${POND_PREFIX}/${target}")
    message (STATUS "Installing: ${target}")
    configure_file ("${POND_DIST_DIR}/${template}" "${target}" @ONLY)
    list (APPEND CMAKE_INSTALL_MANIFEST_FILES "${target}")
endforeach ()
