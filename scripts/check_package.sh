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

sdist="$(ls "$out"/dist/*.tar.gz)"
"$PY" - "$sdist" <<'PY'
import sys
import tarfile

# The sdist is the package's source and nothing else: no tests, since they need the docs,
# examples, notebook and scripts of the repository (see pyproject.toml).
with tarfile.open(sys.argv[1]) as archive:
    names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
top = {name.split("/", 1)[0] for name in names}
# hatchling always adds .gitignore
allowed = {"llama_index", "README.md", "CHANGELOG.md", "LICENSE", "pyproject.toml", "PKG-INFO", ".gitignore"}
assert top <= allowed, f"sdist has {sorted(top - allowed)}"
for required in ("llama_index/llms/ai21/__init__.py", "llama_index/llms/ai21/py.typed", "LICENSE"):
    assert required in names, f"sdist lacks {required}"
print(f"sdist contents ok ({len(names)} entries, no tests)")
PY

wheel="$(ls "$out"/dist/*.whl)"
"$PY" - "$wheel" <<'PY'
import sys
import zipfile

names = set(zipfile.ZipFile(sys.argv[1]).namelist())
required = [
    "llama_index/llms/ai21/__init__.py",
    "llama_index/llms/ai21/py.typed",
    "llama_index/llms/ai21/emulator/__init__.py",
    "llama_index/llms/ai21/emulator/pytest_plugin.py",
]
missing = [name for name in required if name not in names]
assert not missing, f"wheel lacks {missing}"
# Namespace packages shared with every other LlamaIndex integration.
for shared in ("llama_index/__init__.py", "llama_index/llms/__init__.py"):
    assert shared not in names, f"wheel ships {shared}"
entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
text = zipfile.ZipFile(sys.argv[1]).read(entry_points).decode()
assert "ai21_emulator = llama_index.llms.ai21.emulator.pytest_plugin" in text, text
print(f"wheel contents ok ({len(names)} files)")
PY

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
