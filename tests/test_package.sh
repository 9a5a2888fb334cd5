#!/usr/bin/env bash
# test_package: the Debian package, as cpack -G DEB makes it.
#   test_package.sh BUILD_DIR SOURCE_DIR
# Builds the .deb from the build tree into a fresh directory, then checks
# what dpkg would see: its files (dpkg-deb -c: the programs, the library
# and its headers, pond-client.pc and pond.service naming /usr, and no
# test or bench program), its control fields, and its declared
# dependencies: every library that an ELF file of the package needs
# (readelf NEEDED) must come from a package its Depends names, and apt
# must be able to install it here (apt-get -s: simulated). The package is
# unpacked into a throwaway root and pond --help runs from there.
#
# By default nothing is installed on this machine. With
# POND_TEST_DPKG_INSTALL=1 (as root, on a machine you may change) the test
# also runs dpkg -i, apt-get -f install, pond --help from PATH, then
# dpkg --purge and checks that no file of the package is left.
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
. "$src/tests/pond_check.sh"
pond_check_start test_package

cpack -G DEB -B "$tmp/out" --config "$build/CPackConfig.cmake" >"$tmp/cpack.log" 2>&1 \
    || { cat "$tmp/cpack.log"; fail "cpack -G DEB"; }
deb=$(ls "$tmp"/out/pond_*.deb)
ok "cpack -G DEB made $(basename "$deb")"

#  ---------------------------------------------------------------------
#  Contents

dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$tmp/files"
for file in /usr/bin/pond /usr/bin/pond-store /usr/bin/pond-broker /usr/bin/pond-device \
        /usr/bin/pond-quack-counter /usr/bin/pond-badge-granter /usr/bin/pond-alexa-view \
        /usr/bin/pond-mobile-view /usr/bin/pond-gateway /usr/lib/libpond-client.so.1 /usr/lib/libpond-client.so \
        /usr/lib/libpond-client.a /usr/lib/pkgconfig/pond-client.pc /usr/include/pond/pond.h \
        /usr/include/pond/pond_client.h /usr/lib/systemd/system/pond.service \
        /usr/share/pond/rules/v1.json /usr/share/pond/rules/v2.json /usr/share/man/man1/pond.1 \
        /usr/share/doc/pond/README.md; do
    grep -qx "$file" "$tmp/files" || fail "dpkg-deb -c lists $file"
done
ok "dpkg-deb -c: programs, library, headers, pkg-config file, unit, rules, man pages, docs"
if grep -E '/(test_|pond-test-|pond-bench|pond-fuzz|pond-apply-bench|pond-zmq-)' "$tmp/files"; then
    fail "no test, bench or fuzz program in the package"
fi
if grep -v '^/usr/' "$tmp/files"; then fail "every file under /usr"; fi
ok "nothing but /usr, no test, bench or fuzz program"

#  ---------------------------------------------------------------------
#  Control fields and dependencies

depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for package in libc6 libczmq4 libzmq5 libmsgpackc2 libcjson1 'librocksdb[0-9.]*'; do
    echo "$depends" | grep -Eq "(^|, )$package( |,|$)" || fail "Depends names $package"
done
ok "Depends names libc6, libczmq4, libzmq5, libmsgpackc2, libcjson1, librocksdb"
[ "$(dpkg-deb -f "$deb" Package)" = pond ] || fail "Package: pond"
dpkg-deb -I "$deb" shlibs >"$tmp/shlibs"
dpkg-deb -I "$deb" triggers >"$tmp/triggers"
grep -q "^libpond-client 1 pond" "$tmp/shlibs" \
    || fail "shlibs: libpond-client 1 (the SONAME's version)"
grep -q "activate-noawait ldconfig" "$tmp/triggers" \
    || fail "triggers: ldconfig"
ok "control: shlibs for libpond-client.so.1, ldconfig trigger, maintainer scripts"

root=$tmp/root
dpkg-deb -x "$deb" "$root"

#  Every NEEDED of every ELF file must be in this package or come from a
#  package Depends names (the libraries those load are their business).
#  First each library needed, once, with the package that has it here.
for elf in "$root"/usr/bin/* "$root"/usr/lib/*.so.*; do
    [ -L "$elf" ] || readelf -d "$elf" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'
done | sort -u >"$tmp/needed"
ldconfig -p >"$tmp/ldconfig"
while IFS= read -r lib; do
    [ -e "$root/usr/lib/$lib" ] && continue    #  in the package itself
    path=$(awk -v lib="$lib" '$1 == lib {print $NF; exit}' "$tmp/ldconfig")
    dpkg -S "$(readlink -f "$path")" "$path" >"$tmp/dpkg-S" 2>/dev/null || true
    owner=$(sed -n '1s/:.*//p' "$tmp/dpkg-S")
    echo "$lib ${owner:-none}"
done <"$tmp/needed" >"$tmp/owners"
echo "libraries needed: $(tr '\n' ' ' <"$tmp/needed")"

#  Prints what is missing from depends; returns 1 if anything is.
needed_declared () {
    local depends=$1 missing=0 lib owner
    while read -r lib owner; do
        if ! echo "$depends" | grep -Eq "(^|, )$owner( |,|$)"; then
            echo "  $lib from $owner: not in Depends"
            missing=1
        fi
    done <"$tmp/owners"
    return $missing
}
needed_declared "$depends" || fail "every library the package's programs need is declared"
ok "every NEEDED of the package's ELF files comes from a package Depends names"
#  Failure path: the check sees a dependency left out
if needed_declared "$(echo "$depends" | sed 's/libczmq4[^,]*, //')" >"$tmp/missing"; then
    fail "without libczmq4 in Depends the check finds it missing"
fi
grep -q "libczmq.so.4 from libczmq4: not in Depends" "$tmp/missing" \
    || fail "the check names libczmq4: $(cat "$tmp/missing")"
ok "a Depends without libczmq4 is caught (libczmq.so.4 from libczmq4: not in Depends)"

#  apt can satisfy the dependencies here (simulated: nothing installed)
apt-get -s install "$deb" >"$tmp/apt.log" 2>&1 || { cat "$tmp/apt.log"; fail "apt-get -s install"; }
grep -q "^Inst pond " "$tmp/apt.log" || { cat "$tmp/apt.log"; fail "apt-get -s would install pond"; }
ok "apt-get -s install: dependencies satisfiable, pond would install"

#  ---------------------------------------------------------------------
#  Unpacked

grep -q "^prefix=/usr$" "$root/usr/lib/pkgconfig/pond-client.pc" || fail "pond-client.pc: prefix=/usr"
grep -q "^ExecStart=/usr/bin/pond up --foreground --journal --data /var/lib/pond$" \
    "$root/usr/lib/systemd/system/pond.service" || fail "pond.service runs /usr/bin/pond"
"$root/usr/bin/pond" --help >"$tmp/help" || fail "pond --help from the unpacked package"
grep -q "^Usage: pond COMMAND" "$tmp/help" || fail "pond --help says its usage"
ok "unpacked: pond-client.pc and pond.service name /usr; pond --help runs"

#  ---------------------------------------------------------------------
#  A real install, only when asked

if [ "${POND_TEST_DPKG_INSTALL:-0}" = 1 ]; then
    [ "$(id -u)" -eq 0 ] || fail "POND_TEST_DPKG_INSTALL=1 needs root"
    if dpkg -s pond >/dev/null 2>&1; then fail "pond is not installed before the test"; fi
    pond_check_cleanups+=("dpkg --purge pond")
    dpkg -i "$deb" >"$tmp/dpkg.log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get -f install -y -qq >>"$tmp/dpkg.log" 2>&1 \
        || { cat "$tmp/dpkg.log"; fail "dpkg -i, apt-get -f install"; }
    [ "$(command -v pond)" = /usr/bin/pond ] || fail "pond on PATH is /usr/bin/pond"
    pond --help >/dev/null || fail "pond --help from PATH"
    ok "dpkg -i, apt-get -f install: pond --help from PATH"
    dpkg -L pond >"$tmp/listed"
    dpkg --purge pond >>"$tmp/dpkg.log" 2>&1 || fail "dpkg --purge pond"
    while IFS= read -r path; do
        if [ -e "$path" ] && [ ! -d "$path" ]; then fail "$path removed"; fi
    done <"$tmp/listed"
    for dir in /usr/include/pond /usr/share/pond /usr/share/doc/pond /var/lib/pond; do
        [ ! -e "$dir" ] || fail "$dir removed"
    done
    ok "dpkg --purge pond leaves none of its $(wc -l <"$tmp/listed") paths"
else
    echo "skipped: dpkg -i / dpkg --purge on this machine (POND_TEST_DPKG_INSTALL=1 runs them)"
fi

pond_check_done
