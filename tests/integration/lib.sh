# lib.sh — shared helpers for the integration tests (POSIX sh; source it).
#
#   . tests/integration/lib.sh        (from the repo root, as run_integration.sh does)
#
# Sourcing it creates a private temp dir ($T_DIR), and installs a trap that
# stops exactly the processes the test started (start_redis, start_bg) on
# EXIT, INT and TERM: SIGTERM, a bounded wait, then SIGKILL.  Every wait in
# here is bounded; a test that times out fails with a message, never hangs.
#
#   free_port                    prints a free TCP port on 127.0.0.1
#   start_redis                  starts a private redis-server; sets REDIS_PORT,
#                                REDIS_URL, REDIS_PID
#   rcli ARGS...                 redis-cli against that server (raw output)
#   start_bg NAME CMD...         runs CMD in the background, output in
#                                $T_DIR/NAME.log; sets LAST_PID, records NAME
#   pid_of NAME                  the pid start_bg recorded for NAME
#   stop_one NAME [SIG]          stops one started process (default TERM),
#                                waits for it (bounded); returns its exit status
#   alive NAME                   true while NAME runs
#   wait_for DESC TIMEOUT_S CMD...   polls CMD (every 0.1 s) until it succeeds,
#                                fails the test after TIMEOUT_S seconds
#   fail MSG                     prints the message (and log tails), exits 1
#   assert_eq ACTUAL EXPECTED MSG
#   pass MSG                     prints "ok - MSG"
#   stop_all                     what the trap runs
#
# Environment: SO_BIN (default build/bin), T_KEEP=1 keeps $T_DIR for a look.

SO_BIN=${SO_BIN:-build/bin}
T_NAME=$(basename "$0" .sh)
T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/so-$T_NAME.XXXXXX") || { echo "mktemp failed" >&2; exit 1; }
T_PIDS=""          # "name:pid" words, in start order
T_STOP_WAIT=${T_STOP_WAIT:-5}   # seconds between SIGTERM and SIGKILL

say() { echo "[$T_NAME] $*"; }

pass() { echo "ok - $*"; }

fail() {
    echo "FAIL [$T_NAME]: $*" >&2
    for f in "$T_DIR"/*.log; do
        [ -f "$f" ] || continue
        echo "---- tail $f" >&2
        tail -n 20 "$f" >&2
    done
    exit 1
}

assert_eq() {
    [ "$1" = "$2" ] || fail "$3: got '$1', expected '$2'"
}

# Asks the kernel for a free port (bind to port 0); falls back to a random
# port that ss does not list as listening.
free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' && return 0
    fi
    _fp_i=0
    while [ $_fp_i -lt 100 ]; do
        _fp_p=$(( ( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 20000 ) + 20000 ))
        ss -Htln "sport = :$_fp_p" 2>/dev/null | grep -q . || { echo "$_fp_p"; return 0; }
        _fp_i=$((_fp_i + 1))
    done
    fail "no free port found"
}

s_record() { T_PIDS="$T_PIDS $1:$2"; }

pid_of() {
    _po_pid=""
    for _po_e in $T_PIDS; do
        [ "${_po_e%%:*}" = "$1" ] && _po_pid=${_po_e#*:}
    done
    echo "$_po_pid"
}

s_forget() {
    _sf_keep=""
    for _sf_e in $T_PIDS; do
        [ "${_sf_e%%:*}" = "$1" ] || _sf_keep="$_sf_keep $_sf_e"
    done
    T_PIDS=$_sf_keep
}

alive() {
    _al_pid=$(pid_of "$1")
    [ -n "$_al_pid" ] && s_running "$_al_pid"
}

# start_bg NAME CMD...  — the command runs in the background in a session
# (and process group) of its own, with stdout and stderr in
# $T_DIR/NAME.log; signals go to the whole group, so a wrapper shell's
# children stop with it.  A name started again replaces the record (the
# old process must have been stopped first).
start_bg() {
    _sb_name=$1; shift
    s_forget "$_sb_name"
    setsid "$@" >>"$T_DIR/$_sb_name.log" 2>&1 &
    LAST_PID=$!
    s_record "$_sb_name" "$LAST_PID"
}

# Waits (bounded) for a pid that is our child to exit; prints nothing and
# returns 0 once it is gone, 1 on timeout.
# Sends a signal to a started process and its process group.
s_kill() {
    kill -s "$1" -- "-$2" 2>/dev/null
    kill -s "$1" "$2" 2>/dev/null
}

# True while pid $1 exists and is not a zombie.
s_running() {
    _rn_st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    case $_rn_st in Z*) return 1 ;; esac
    return 0
}

s_wait_gone() {
    _wg_n=0
    while s_running "$1"; do
        [ $_wg_n -ge $(($2 * 10)) ] && return 1
        sleep 0.1
        _wg_n=$((_wg_n + 1))
    done
    return 0
}

# stop_one NAME [SIG]: sends SIG (default TERM), waits up to T_STOP_WAIT s,
# then SIGKILL.  Returns the process's exit status (as wait reports it).
stop_one() {
    _so_name=$1; _so_sig=${2:-TERM}
    _so_pid=$(pid_of "$_so_name")
    [ -n "$_so_pid" ] || return 0
    s_kill "$_so_sig" "$_so_pid"
    if ! s_wait_gone "$_so_pid" "$T_STOP_WAIT"; then
        say "$_so_name (pid $_so_pid) still runs ${T_STOP_WAIT}s after SIG$_so_sig: SIGKILL"
        s_kill KILL "$_so_pid"
        s_wait_gone "$_so_pid" 5
    fi
    wait "$_so_pid" 2>/dev/null
    _so_rc=$?
    s_forget "$_so_name"
    return $_so_rc
}

stop_all() {
    trap - EXIT INT TERM
    # Reverse start order: services before the redis-server they use.
    _sa_rev=""
    for _sa_e in $T_PIDS; do _sa_rev="$_sa_e $_sa_rev"; done
    for _sa_e in $_sa_rev; do
        s_kill TERM "${_sa_e#*:}"
    done
    for _sa_e in $_sa_rev; do
        _sa_pid=${_sa_e#*:}
        if ! s_wait_gone "$_sa_pid" "$T_STOP_WAIT"; then
            s_kill KILL "$_sa_pid"
            s_wait_gone "$_sa_pid" 5
        fi
    done
    T_PIDS=""
    if [ "${T_KEEP:-0}" = 1 ]; then
        echo "[$T_NAME] kept $T_DIR" >&2
    else
        rm -rf "$T_DIR"
    fi
}

s_on_exit() {
    _oe_rc=$?
    stop_all
    exit $_oe_rc
}
trap s_on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_for DESC TIMEOUT_S CMD...
wait_for() {
    _wf_desc=$1; _wf_limit=$2; shift 2
    _wf_n=0
    until "$@" >/dev/null 2>&1; do
        [ $_wf_n -ge $((_wf_limit * 10)) ] && fail "timed out after ${_wf_limit}s waiting for $_wf_desc"
        sleep 0.1
        _wf_n=$((_wf_n + 1))
    done
}

rcli() {
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --raw "$@"
}

s_redis_ping() { [ "$(rcli PING 2>/dev/null)" = PONG ]; }

# start_redis: a private redis-server on a free loopback port, no
# persistence, in the foreground of a background job (so its pid is ours).
start_redis() {
    command -v redis-server >/dev/null 2>&1 || fail "redis-server not installed (make deps)"
    _sr_tries=0
    while :; do
        REDIS_PORT=$(free_port)
        start_bg redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' \
            --appendonly no --daemonize no --dir "$T_DIR" --loglevel warning
        REDIS_PID=$LAST_PID
        _sr_n=0
        while [ $_sr_n -lt 100 ] && s_running "$REDIS_PID"; do
            s_redis_ping && break
            sleep 0.1
            _sr_n=$((_sr_n + 1))
        done
        s_redis_ping && break
        stop_one redis KILL
        _sr_tries=$((_sr_tries + 1))
        # The port may have been taken between free_port and bind: retry.
        [ $_sr_tries -ge 3 ] && fail "redis-server did not answer PING"
    done
    REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
    export REDIS_PORT REDIS_URL
}
