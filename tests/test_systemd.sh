#!/usr/bin/env bash
# test_systemd: pond.service, as cmake --install writes it.
#   test_systemd.sh BUILD_DIR SOURCE_DIR
# systemd-analyze verify passes on the installed unit (offline: no running
# systemd needed; MANPATH so that its man:pond(1) is found) and fails on a
# broken copy (a missing ExecStart binary), so the check is real. Then the
# unit's own ExecStart, with a temporary data directory for /var/lib/pond,
# runs the mesh as systemd would: every process's lines on its stderr
# (the journal), none in DIR/logs/NAME.log; and SIGTERM to it alone
# (KillMode=mixed) stops every process, exit 0. pond up --journal without
# --foreground is a usage error.
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
. "$src/tests/pond_check.sh"
pond_check_start test_systemd
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log"
unit=$prefix/lib/systemd/system/pond.service
[ -f "$unit" ] || fail "PREFIX/lib/systemd/system/pond.service installed"
ok "cmake --install wrote pond.service"

export MANPATH=$prefix/share/man
systemd-analyze verify "$unit" >"$tmp/verify.log" 2>&1 \
    || { cat "$tmp/verify.log"; fail "systemd-analyze verify pond.service"; }
ok "systemd-analyze verify pond.service"
for line in "ExecStart=$prefix/bin/pond up --foreground --journal --data /var/lib/pond" \
        "KillMode=mixed" "Restart=on-failure" "StateDirectory=pond" "Type=exec" \
        "WantedBy=multi-user.target"; do
    grep -qx "$line" "$unit" || fail "pond.service has $line"
done
ok "the unit runs the supervisor in the foreground, data in /var/lib/pond, Restart=on-failure"

#  Failure path: the verifier refuses a unit whose binary is missing
mkdir -p "$tmp/broken"
sed "s|^ExecStart=$prefix/bin/pond |ExecStart=$prefix/bin/no-such-pond |" "$unit" \
    >"$tmp/broken/pond.service"
if systemd-analyze verify "$tmp/broken/pond.service" >"$tmp/broken.log" 2>&1; then
    fail "systemd-analyze verify refuses a missing ExecStart binary"
fi
grep -q "no-such-pond" "$tmp/broken.log" || fail "the refusal names the binary: $(cat "$tmp/broken.log")"
ok "systemd-analyze verify refuses a unit whose ExecStart is missing"

#  Failure path: --journal without --foreground
status=0
"$prefix/bin/pond" up --journal --data "$tmp/nomesh" >"$tmp/usage.log" 2>&1 || status=$?
[ "$status" -eq 2 ] && grep -q "needs --foreground" "$tmp/usage.log" \
    || fail "pond up --journal without --foreground exits 2 (did $status: $(cat "$tmp/usage.log"))"
[ ! -e "$tmp/nomesh/supervisor.lock" ] || fail "nothing started"
ok "pond up --journal without --foreground: usage error, nothing started"

#  The unit's command line, as systemd runs it, on a temporary directory
data=$tmp/data
read -r -a command <<<"$(sed -n 's/^ExecStart=//p' "$unit" | sed "s|/var/lib/pond|$data|")"
"${command[@]}" >"$tmp/journal" 2>&1 &
supervisor=$!
pond_check_track "$supervisor"
wait_for "$tmp/journal" "the mesh is up" 30000 || { cat "$tmp/journal"; fail "the mesh comes up"; }
"$prefix/bin/pond" publish --data "$data" --name QUACKED --entity anna >/dev/null || fail "publish to the mesh"
for process in "pond-store:" "(pond-broker)" "(pond-quack-counter)" "(pond-badge-granter)" \
        "(pond-alexa-view)" "(pond-mobile-view)" "(pond-gateway)" "supervisor: started store"; do
    grep -qF -- "$process" "$tmp/journal" || { cat "$tmp/journal"; fail "the journal has $process"; }
done
ok "every process logs to the supervisor's stderr (the journal)"
for name in store broker quack-counter badge-granter alexa-view mobile-view gateway; do
    [ ! -s "$data/logs/$name.log" ] || fail "nothing in DIR/logs/$name.log"
done
ok "no process logs to DIR/logs/NAME.log"
pids=$(sed -n 's/.*started by pond-supervisor (pid [0-9]*) as pid \([0-9]*\).*/\1/p' "$tmp/journal")
[ "$(echo "$pids" | wc -w)" -eq 7 ] || fail "seven processes started: $pids"
kill -TERM "$supervisor"
status=0
wait "$supervisor" || status=$?
[ "$status" -eq 0 ] || { tail -20 "$tmp/journal"; fail "SIGTERM: the supervisor exits 0 (did $status)"; }
for pid in $pids; do
    if kill -0 "$pid" 2>/dev/null; then fail "process $pid stopped with its supervisor"; fi
done
grep -q "supervisor: supervisor stopped" "$tmp/journal" || fail "the journal says it stopped"
ok "SIGTERM to the supervisor alone stops all seven processes, exit 0"

pond_check_done
