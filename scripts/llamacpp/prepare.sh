#!/usr/bin/env bash
# The llama-server binary and the tiny Jamba GGUF, both cached outside the checkout.
#
#   bash scripts/llamacpp/prepare.sh PYTHON [--cached-only]
#
# Prints two lines on stdout: the llama-server binary, then the model's directory
# (tiny-jamba.gguf, chains.json). PYTHON runs build_model.py (it needs gguf and numpy).
# Exit status: 0; 3 when the llama.cpp source cannot be downloaded; 4 with --cached-only when
# llama-server has not been built yet (nothing is built then); anything else is a failure.
# Progress and step times go to stderr.
set -euo pipefail
cd "$(dirname "$0")/../.."

PY="$1"
CACHED_ONLY="${2:-}"
HERE=scripts/llamacpp
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/llama-index-llms-ai21"
t0=$(date +%s)
say() { echo "==> [prepare $(($(date +%s) - t0))s] $*" >&2; }

SERVER_BIN="$(bash "$HERE/build_server.sh" $CACHED_ONLY)"

digest="$(cat "$HERE/build_model.py" "$HERE/chat_template.jinja" | sha256sum | cut -c1-16)"
MODEL_DIR="$CACHE_ROOT/models/tiny-jamba-gguf-$digest"
if [ ! -f "$MODEL_DIR/chains.json" ]; then
    say "writing the tiny Jamba GGUF in $MODEL_DIR"
    mkdir -p "$CACHE_ROOT/models"
    staging="$(mktemp -d "$CACHE_ROOT/models/building-gguf-XXXXXX")"
    "$PY" "$HERE/build_model.py" "$staging/model" >"$staging/build.log" 2>&1 || {
        tail -n 30 "$staging/build.log" >&2
        rm -rf "$staging"
        exit 1
    }
    # Another run may have finished the same build meanwhile: either copy will do.
    [ -f "$MODEL_DIR/chains.json" ] || rm -rf "$MODEL_DIR"
    mv -T "$staging/model" "$MODEL_DIR" 2>/dev/null || true
    rm -rf "$staging"
    # Models written by older versions of the builder are never used again.
    find "$CACHE_ROOT/models" -mindepth 1 -maxdepth 1 -name 'tiny-jamba-gguf-*' \
        ! -name "tiny-jamba-gguf-$digest" -exec rm -rf {} +
    say "model written"
fi
echo "$SERVER_BIN"
echo "$MODEL_DIR"
