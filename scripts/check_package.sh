#!/usr/bin/env bash
# Build the sdist and wheel of the package and of the emulator (emulator/, its own distribution),
# check their metadata and contents, install both wheels into a fresh virtualenv and use them
# there: what users get from `pip install` must work. The package's wheel holds the adapter only.
set -euo pipefail
PY="${1:-python3}"
cd "$(dirname "$0")/.."

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

"$PY" -m build --outdir "$out/dist" . >"$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
"$PY" -m build --outdir "$out/emulator-dist" emulator >"$out/build.log" 2>&1 \
    || { cat "$out/build.log"; exit 1; }
"$PY" -m twine check --strict "$out"/dist/* "$out"/emulator-dist/*

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
required = ["llama_index/llms/ai21/__init__.py", "llama_index/llms/ai21/py.typed"]
missing = [name for name in required if name not in names]
assert not missing, f"wheel lacks {missing}"
# Namespace packages shared with every other LlamaIndex integration.
for shared in ("llama_index/__init__.py", "llama_index/llms/__init__.py"):
    assert shared not in names, f"wheel ships {shared}"
# The adapter only: no emulator code, and no pytest plugin loaded into every user's test runs.
code = [name for name in names if not name.startswith("llama_index_llms_ai21-")]
assert all(name.startswith("llama_index/llms/ai21/") for name in code), code
emulator = [name for name in names if "emulator" in name.lower()]
assert not emulator, f"wheel ships emulator code: {emulator}"
assert not any(name.endswith(".dist-info/entry_points.txt") for name in names), "entry points"
print(f"wheel contents ok ({len(names)} files, no emulator)")
PY

emulator_wheel="$(ls "$out"/emulator-dist/*.whl)"
"$PY" - "$emulator_wheel" <<'PY'
import sys
import zipfile

names = set(zipfile.ZipFile(sys.argv[1]).namelist())
code = {name for name in names if not name.startswith("ai21_emulator-")}
assert {"ai21_emulator/__init__.py", "ai21_emulator/__main__.py", "ai21_emulator/py.typed",
        "ai21_emulator/pytest_plugin.py"} <= code, sorted(code)
assert all(name.startswith("ai21_emulator/") for name in code), sorted(code)
# Opt-in: no pytest11 entry point (a `pytest_plugins` line or `-p` loads the plugin).
assert not any(name.endswith(".dist-info/entry_points.txt") for name in names), "entry points"
metadata = zipfile.ZipFile(sys.argv[1]).read(
    next(n for n in names if n.endswith(".dist-info/METADATA"))
).decode()
requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
assert not any("llama-index" in line for line in requires), requires
print(f"emulator wheel contents ok ({len(code)} files, requires {requires})")
PY

# A fresh virtualenv that may reuse this machine's already-downloaded dependencies.
python3 -m venv "$out/venv"
"$out/venv/bin/pip" install --quiet --disable-pip-version-check "$wheel" "$emulator_wheel"
"$out/venv/bin/python" - <<'PY'
import importlib.metadata as md

from ai21_emulator import Emulator
from llama_index.llms.ai21 import AI21

with Emulator() as emu:
    llm = AI21(api_key=emu.api_key, base_url=emu.base_url)
    text = llm.complete("Say hello").text
    assert text, "empty completion from the installed wheel"
print(
    f"installed wheels {md.version('llama-index-llms-ai21')} and ai21-emulator"
    f" {md.version('ai21-emulator')} work: {text[:60]!r}"
)
PY
echo "package check passed"
