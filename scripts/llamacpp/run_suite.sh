#!/usr/bin/env bash
# ./dev test-llamacpp: tests/llamacpp against real llama.cpp llama-servers on loopback.
#
#   bash scripts/llamacpp/run_suite.sh TEST_PYTHON [pytest args]
#
# 1. prepare.sh: llama-server from the llama-cpp-python sdist (build_server.sh, cached outside
#    the checkout by version) and the tiny Jamba GGUF (build_model.py, cached by a hash of the
#    builder and its template); if the package index cannot deliver the sdist, say so loudly
#    and exit 0 (only this suite is skipped).
# 2. Three servers with Jamba Reasoning 3B's template (--jinja): one with --api-key, one
#    without, one without a key and with --reasoning-format none (the reasoning stays in
#    content); wait for /health.
# 3. pytest tests/llamacpp with TEST_PYTHON (the package's venv); the servers stop at exit.
# Any failure after the download is a failure (non-zero exit). Each step prints its time.
set -euo pipefail
cd "$(dirname "$0")/../.."

TEST_PY="$1"
shift
HERE=scripts/llamacpp
N_CTX=2048
t0=$(date +%s)
say() { echo "==> [test-llamacpp $(($(date +%s) - t0))s] $*" >&2; }

say "llama-server and the model (built once, then cached)"
set +e
prepared="$(bash "$HERE/prepare.sh" "$TEST_PY")"
status=$?
set -e
if [ "$status" -eq 3 ]; then
    cat >&2 <<'EOF'

################################################################################
#  SKIPPED: tests/llamacpp. The llama-cpp-python sdist (llama.cpp's source)     #
#  could not be downloaded from the package index. Nothing else is skipped.     #
################################################################################

EOF
    exit 0
elif [ "$status" -ne 0 ]; then
    echo "preparing llama-server or the model failed (exit $status)" >&2
    exit "$status"
fi
SERVER_BIN="$(sed -n 1p <<<"$prepared")"
MODEL_DIR="$(sed -n 2p <<<"$prepared")"
say "ready: $SERVER_BIN, $MODEL_DIR"

# shellcheck source=../servers.sh
. scripts/servers.sh

# start_server NAME PORT [llama-server flags]
start_server() {
    local name="$1" port="$2"
    shift 2
    # Loopback only; one slot (n_ctx is the whole context, as /props reports it); one thread
    # (the model is tiny; CI's cores are shared).
    launch "$name" "$SERVER_BIN" -m "$MODEL_DIR/tiny-jamba.gguf" --jinja -c "$N_CTX" -np 1 -t 1 \
        --host 127.0.0.1 --port "$port" "$@"
}

KEY="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
PORT="$(free_port)"
OPEN_PORT="$(free_port)"
RAW_PORT="$(free_port)"
say "starting llama-server on 127.0.0.1:$PORT (with a key), :$OPEN_PORT (without), :$RAW_PORT (--reasoning-format none)"
start_server keyed "$PORT" --api-key "$KEY"
start_server open "$OPEN_PORT"
start_server raw "$RAW_PORT" --reasoning-format none
wait_healthy keyed "$PORT" 60
wait_healthy open "$OPEN_PORT" 60
wait_healthy raw "$RAW_PORT" 60
say "servers healthy"

status=0
AI21_TEST_LLAMACPP_URL="http://127.0.0.1:$PORT/v1" \
    AI21_TEST_LLAMACPP_KEY="$KEY" \
    AI21_TEST_LLAMACPP_OPEN_URL="http://127.0.0.1:$OPEN_PORT/v1" \
    AI21_TEST_LLAMACPP_RAW_URL="http://127.0.0.1:$RAW_PORT/v1" \
    AI21_TEST_LLAMACPP_N_CTX="$N_CTX" \
    AI21_TEST_LLAMACPP_SERVER="$SERVER_BIN" \
    AI21_TEST_LLAMACPP_MODEL_DIR="$MODEL_DIR" \
    "$TEST_PY" -m pytest tests/llamacpp -p no:cacheprovider "$@" || status=$?
[ "$status" -eq 0 ] || server_logs keyed open raw
say "done (pytest exit $status)"
exit "$status"
