# pond_check.sh: what the shell tests of pond as a package share
# (test_install.sh, test_package.sh, test_systemd.sh). Source it.
#
#   pond_check_start NAME     a fresh temporary directory in $tmp, removed
#                             at exit with every process pond_check_track got
#   ok WHAT                   count a check that held
#   fail WHAT                 say which check failed and exit 1
#   expect WHAT COMMAND...    ok if COMMAND succeeds, else fail
#   pond_check_track PID      stop PID (SIGTERM, then SIGKILL) at exit
#   wait_for FILE TEXT MS     wait until FILE contains TEXT; 1 if it never did
#   pond_check_done           print "N passed, 0 failed"

pond_check_passed=0
pond_check_pids=()
pond_check_cleanups=()

pond_check_exit () {
    local status=$?
    local hook pid
    for hook in "${pond_check_cleanups[@]}"; do
        eval "$hook" >/dev/null 2>&1 || true
    done
    for pid in "${pond_check_pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pond_check_pids[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    [ -n "${tmp:-}" ] && [ -d "$tmp" ] && rm -rf "$tmp"
    exit $status
}

pond_check_start () {
    pond_check_name=$1
    tmp=$(mktemp -d "/tmp/pond-$1.XXXXXX")
    trap pond_check_exit EXIT
    trap 'exit 130' INT TERM
}

ok () {
    pond_check_passed=$((pond_check_passed + 1))
    echo "ok: $*"
}

fail () {
    echo "FAILED: $*" >&2
    echo "$pond_check_name: $pond_check_passed passed, 1 failed"
    exit 1
}

expect () {
    local what=$1
    shift
    if "$@"; then ok "$what"; else fail "$what ($*)"; fi
}

pond_check_track () {
    pond_check_pids+=("$1")
}

wait_for () {
    local file=$1 text=$2 ms=$3
    local waited=0
    while [ "$waited" -lt "$ms" ]; do
        grep -qF -- "$text" "$file" 2>/dev/null && return 0
        sleep 0.1
        waited=$((waited + 100))
    done
    return 1
}

pond_check_done () {
    echo "$pond_check_name: $pond_check_passed passed, 0 failed"
}
