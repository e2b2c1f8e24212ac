#!/usr/bin/env bash
# Build the sdist and wheel, check their metadata, install the wheel into a fresh
# virtualenv and import it there: what users get from `pip install` must work.
set -euo pipefail
PY="${1:-python3}"
cd "$(dirname "$0")/.."

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

"$PY" -m build --outdir "$out/dist" . >"$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
"$PY" -m twine check --strict "$out"/dist/*

wheel="$(ls "$out"/dist/*.whl)"
for member in llama_index/llms/ai21/py.typed llama_index/llms/ai21/emulator/__init__.py \
              llama_index/llms/ai21/emulator/pytest_plugin.py; do
    "$PY" -m zipfile -l "$wheel" | grep -q "$member" || { echo "wheel lacks $member"; exit 1; }
done
if "$PY" -m zipfile -l "$wheel" | grep -qE ' llama_index/(llms/)?__init__.py'; then
    echo "wheel ships llama_index/__init__.py or llama_index/llms/__init__.py (namespace packages)"; exit 1
fi
"$PY" -m zipfile -l "$wheel" >/dev/null
unzip -p "$wheel" '*.dist-info/entry_points.txt' | grep -q 'ai21_emulator = llama_index.llms.ai21.emulator.pytest_plugin' \
    || { echo "wheel lacks the pytest11 entry point"; exit 1; }

# A fresh virtualenv that may reuse this machine's already-downloaded dependencies.
python3 -m venv "$out/venv"
"$out/venv/bin/pip" install --quiet --disable-pip-version-check "$wheel"
"$out/venv/bin/python" - <<'PY'
import importlib.metadata as md

from llama_index.llms.ai21 import AI21
from llama_index.llms.ai21.emulator import Emulator

with Emulator() as emu:
    llm = AI21(api_key=emu.api_key, base_url=emu.base_url)
    text = llm.complete("Say hello").text
    assert text, "empty completion from the installed wheel"
print(f"installed wheel {md.version('llama-index-llms-ai21')} works: {text[:60]!r}")
PY
echo "package check passed"
