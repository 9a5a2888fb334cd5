#!/usr/bin/env bash
# test_install: pond as the user of an installed pond sees it.
#   test_install.sh BUILD_DIR SOURCE_DIR
# cmake --install into a fresh prefix; libpond-client (SONAME, only pond_*
# exported, internal symbols not linkable) and pond-client.pc; the two
# examples built out of tree, finding pond only through pkg-config (and
# the device once more with the static library); then, against a mesh of
# the installed binaries (pond up from PREFIX/bin): the device publishes,
# the actor catches up and counts live events; the device resends the
# same id after NACK 503 (a broker whose store is not started yet).
# $POND_EXAMPLE_CFLAGS: flags for the examples (the sanitizers, in the
# ASan build: a program that loads an ASan library must be built with it).
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
. "$src/tests/pond_check.sh"
pond_check_start test_install
cflags=${POND_EXAMPLE_CFLAGS:-}
prefix=$tmp/prefix
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig

#  ---------------------------------------------------------------------
#  Install

cmake --install "$build" --prefix "$prefix" >"$tmp/install.log"
ok "cmake --install $build --prefix PREFIX"
for file in bin/pond bin/pond-store bin/pond-broker bin/pond-device bin/pond-quack-counter \
        bin/pond-badge-granter bin/pond-alexa-view bin/pond-mobile-view bin/pond-gateway \
        lib/libpond-client.so.1 lib/libpond-client.so lib/libpond-client.a \
        lib/pkgconfig/pond-client.pc include/pond/pond.h include/pond/pond_client.h \
        include/pond/pond_messages.h include/pond/pond_identity.h \
        include/pond/pond_actor_link.h share/pond/rules/v1.json share/pond/rules/v2.json \
        share/doc/pond/README.md share/doc/pond/PROTOCOL.md lib/systemd/system/pond.service; do
    [ -e "$prefix/$file" ] || fail "PREFIX/$file installed"
done
ok "binaries, library, headers, pkg-config file, rules, docs and unit installed"
[ "$(ls "$prefix/bin" | wc -l)" -eq 9 ] || fail "only the 9 programs in PREFIX/bin: $(ls "$prefix/bin")"
ok "no test, bench or fuzz program installed"
if grep -rE '#include +"(pond_proto|pond_keys|pond_client_io)\.h"' "$prefix/include"; then
    fail "the public headers include no internal header"
fi
ok "the public headers include no internal header"

#  ---------------------------------------------------------------------
#  The library

lib=$prefix/lib/libpond-client.so.1
soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = libpond-client.so.1 ] || fail "SONAME libpond-client.so.1 (is '$soname')"
ok "SONAME $soname"
nm -D --defined-only "$lib" | awk '{print $NF}' >"$tmp/exported"
others=$(grep -v '^pond_' "$tmp/exported" || true)
[ -z "$others" ] || fail "only pond_* exported; also: $others"
for symbol in pond_client_publish pond_publisher_push pond_sub_new pond_reader_new \
        pond_actor_link_query pond_keys_use pond_uuid_v7 pond_event_encode \
        pond_endpoints_resolve; do
    grep -qx "$symbol" "$tmp/exported" || fail "$symbol exported"
done
for symbol in pond_proto_is pond_ack_decode pond_keyring_new pond_client_io_send \
        pond_process_spawn pond_keys_server; do
    if grep -qx "$symbol" "$tmp/exported"; then fail "internal $symbol not exported"; fi
done
ok "$(wc -l <"$tmp/exported") symbols exported, all public pond_*, none internal"

expect "pkg-config --modversion pond-client" pkg-config --modversion pond-client
flags=$(pkg-config --cflags --libs pond-client)
echo "pkg-config --cflags --libs pond-client: $flags"
case "$flags" in
    *"-I$prefix/include"*"-L$prefix/lib -lpond-client"*) ok "pkg-config names PREFIX" ;;
    *) fail "pkg-config --cflags --libs pond-client names PREFIX: $flags" ;;
esac

#  Failure path: an internal function is hidden, so a program cannot link it
cat >"$tmp/internal.c" <<'C'
#include <pond/pond.h>
int pond_proto_is (void *frame, const char *command);
int main (void) { return pond_proto_is (0, "ACK"); }
C
if cc $cflags "$tmp/internal.c" -o "$tmp/internal" $(pkg-config --cflags --libs pond-client) \
        2>"$tmp/internal.err"; then
    fail "a program calling internal pond_proto_is does not link"
fi
grep -q "undefined reference to .pond_proto_is" "$tmp/internal.err" \
    || fail "the link fails on pond_proto_is: $(cat "$tmp/internal.err")"
ok "an internal symbol does not link (undefined reference to pond_proto_is)"

#  ---------------------------------------------------------------------
#  The examples, out of tree, through pkg-config only

for example in device actor; do
    cmake -S "$src/examples/$example" -B "$tmp/$example" -DCMAKE_C_FLAGS="$cflags -Wall -Werror" \
        >"$tmp/$example.configure" 2>&1 || { cat "$tmp/$example.configure"; fail "configure $example"; }
    cmake --build "$tmp/$example" >"$tmp/$example.build" 2>&1 \
        || { cat "$tmp/$example.build"; fail "build $example"; }
    ldd "$tmp/$example/$example" | grep -c "libpond-client.so.1 => $prefix/lib" >/dev/null \
        || fail "$example runs with PREFIX/lib/libpond-client.so.1"
done
ok "examples/device and examples/actor built out of tree against PREFIX"
cc $cflags "$src/examples/device/device.c" -o "$tmp/device-static" \
    $(pkg-config --cflags pond-client) "$prefix/lib/libpond-client.a" \
    $(pkg-config --libs $(pkg-config --print-requires --print-requires-private pond-client)) -lm \
    || fail "the device links the static library"
if ldd "$tmp/device-static" | grep -c pond-client >/dev/null; then fail "device-static needs no libpond-client.so"; fi
ok "the device links libpond-client.a (static) with the dependencies the .pc names"

#  Failure path: without pond's pkg-config file the examples say what is missing
if PKG_CONFIG_PATH= cmake -S "$src/examples/device" -B "$tmp/nopond" >"$tmp/nopond.log" 2>&1; then
    fail "configuring the device without pond's .pc fails"
fi
grep -q "pond-client" "$tmp/nopond.log" || fail "the configure error names pond-client"
ok "without PKG_CONFIG_PATH the example's configure fails naming pond-client"

#  ---------------------------------------------------------------------
#  Against a mesh of the installed binaries

device=$tmp/device/device
actor=$tmp/actor/actor
mesh=$tmp/mesh

#  Failure paths first: usage, and no mesh at all
status=0
"$device" --count 0 2>/dev/null || status=$?
[ "$status" -eq 2 ] || fail "device --count 0 exits 2 (did $status)"
status=0
"$device" --data "$tmp/nomesh" --count 1 >"$tmp/nomesh.out" 2>&1 || status=$?
[ "$status" -eq 1 ] && grep -q "not stored: 408" "$tmp/nomesh.out" \
    || fail "device without a mesh exits 1 with 408 (did $status: $(cat "$tmp/nomesh.out"))"
status=0
"$actor" --data "$tmp/nomesh" >"$tmp/nomesh-actor.out" 2>&1 || status=$?
[ "$status" -eq 1 ] && grep -q "no heartbeat" "$tmp/nomesh-actor.out" \
    || fail "actor without a mesh exits 1 (did $status: $(cat "$tmp/nomesh-actor.out"))"
ok "device and actor refuse bad usage and report a missing mesh"

pond_check_cleanups+=("'$prefix/bin/pond' down --data '$mesh'")
"$prefix/bin/pond" up --data "$mesh" >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log"; fail "pond up"; }
ok "pond up from PREFIX/bin"
"$device" --data "$mesh" --customer anna --count 5 | tee "$tmp/device1.out"
[ "$(grep -c "^QUACKED .* for anna: stored as seq" "$tmp/device1.out")" -eq 5 ] \
    || fail "the device stored 5 QUACKED for anna"
ok "the device published 5 QUACKED, each ACKed with its seq"
"$actor" --data "$mesh" --until 8 --idle 20000 >"$tmp/actor.out" 2>&1 &
actor_pid=$!
pond_check_track "$actor_pid"
wait_for "$tmp/actor.out" "caught up: 5 QUACKED" 20000 \
    || { cat "$tmp/actor.out"; fail "the actor caught up with 5 QUACKED"; }
ok "the actor caught up from the log: 5 QUACKED"
"$device" --data "$mesh" --customer ben --count 3 >"$tmp/device2.out"
status=0
wait "$actor_pid" || status=$?
cat "$tmp/actor.out"
[ "$status" -eq 0 ] || fail "the actor exits 0 after 8 (did $status)"
grep -qx "anna 5" "$tmp/actor.out" && grep -qx "ben 3" "$tmp/actor.out" \
    && grep -q "^total 8, last seq 8$" "$tmp/actor.out" \
    || fail "the actor counted anna 5, ben 3, total 8"
ok "the actor counted the live events too: anna 5, ben 3, total 8, each once"
"$prefix/bin/pond" down --data "$mesh" >/dev/null
ok "pond down"

#  NACK 503: a broker whose store is not there yet answers 503; the device
#  sends the same id again and it is stored once when the store comes
mesh503=$tmp/mesh503
mkdir -p "$mesh503"
"$prefix/bin/pond-broker" --data "$mesh503" >"$tmp/broker503.log" 2>&1 &
pond_check_track $!
"$device" --data "$mesh503" --customer carla --count 2 >"$tmp/device503.out" \
    2>"$tmp/device503.err" &
device_pid=$!
pond_check_track "$device_pid"
wait_for "$tmp/device503.err" "503 for" 20000 \
    || { cat "$tmp/device503.err" "$tmp/broker503.log"; fail "the device got NACK 503"; }
"$prefix/bin/pond-store" --data "$mesh503" >"$tmp/store503.log" 2>&1 &
pond_check_track $!
status=0
wait "$device_pid" || status=$?
cat "$tmp/device503.err" "$tmp/device503.out"
[ "$status" -eq 0 ] || fail "the device exits 0 once the store is there (did $status)"
nacked=$(sed -n '/^device: 503 for /{s/^device: 503 for \([0-9a-f-]*\) .*/\1/p;q}' "$tmp/device503.err")
grep -q "^QUACKED $nacked for carla: stored as seq 1$" "$tmp/device503.out" \
    || fail "the id NACKed with 503 ($nacked) is the one stored as seq 1"
grep -q "for carla: stored as seq 2$" "$tmp/device503.out" \
    || fail "the second event is seq 2: the resends stored nothing twice"
ok "after NACK 503 the device resent the same id: stored once, as seq 1"

pond_check_done
