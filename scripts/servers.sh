# Shared by scripts/vllm/run_suite.sh and scripts/llamacpp/run_suite.sh (sourced, not run):
# real servers on loopback, each in its own session, stopped when the suite's shell exits.
#
#   RUN_DIR         a scratch directory (made here) for each server's log and pid
#   launch NAME CMD...   start CMD in its own session, its output in $RUN_DIR/NAME.log
#   wait_healthy NAME PORT SECONDS   poll http://127.0.0.1:PORT/health until it answers
#   free_port       a free loopback port
#   server_logs NAME...  the last lines of each server's log (after a failure)

RUN_DIR="$(mktemp -d)"
PIDS=()

stop_servers() {
    local pid
    for pid in "${PIDS[@]}"; do
        # Each server runs in its own session (setsid): its process group is its pid, and
        # holds the server and whatever it started (vLLM's engine process), nothing else.
        kill -TERM -- "-$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 -- "-$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
    rm -rf "$RUN_DIR"
}
trap stop_servers EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

launch() {
    local name="$1"
    shift
    setsid "$@" >"$RUN_DIR/$name.log" 2>&1 </dev/null &
    PIDS+=("$!")
    echo "$!" >"$RUN_DIR/$name.pid"
}

wait_healthy() {
    local name="$1" port="$2" seconds="$3" pid deadline
    pid="$(cat "$RUN_DIR/$name.pid")"
    deadline=$(($(date +%s) + seconds))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "server '$name' exited during startup; its log ends:" >&2
            tail -n 40 "$RUN_DIR/$name.log" >&2
            return 1
        fi
        if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=2)" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    echo "server '$name' not healthy after $seconds s; its log ends:" >&2
    tail -n 40 "$RUN_DIR/$name.log" >&2
    return 1
}

server_logs() {
    local name
    for name in "$@"; do
        echo "---- server '$name' log (last 30 lines)" >&2
        tail -n 30 "$RUN_DIR/$name.log" >&2
    done
}
