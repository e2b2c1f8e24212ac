#!/usr/bin/env bash
# The inner loop (`-m "not slow" -n 2`) on the newest Python the project checks, in a venv of its
# own that is kept between runs (rebuilt when a pyproject.toml, this script or the Python
# changes), with what ./dev test installs: the package with its tokenizer extra, the emulator and
# the dev group. Usage: scripts/test_newest.sh [pytest args]
#
# The Python: $NEWEST_PYTHON if set, else the first of python3.13 on PATH and pyenv's newest
# 3.13.* that runs. Without one there is nothing to test: it says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
NEWEST=3.13
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/llama-index-llms-ai21"
VENV="$CACHE/venv-newest"
PY="$VENV/bin/python"
STAMP="$VENV/.installed"
mkdir -p "$CACHE"

. scripts/python_version.sh
BASE=$(python_of "$NEWEST" "${NEWEST_PYTHON:-}")
if [ -z "$BASE" ]; then
    echo "==> no Python $NEWEST here (\$NEWEST_PYTHON, python$NEWEST on PATH, pyenv's versions/$NEWEST.*):" \
        "skipped, nothing tested" >&2
    exit 0
fi
echo "==> Python $("$BASE" -c 'import platform; print(platform.python_version())') ($BASE)" >&2
BASE_ID="$("$BASE" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
if [ ! -x "$PY" ] || [ "$(cat "$VENV/.python" 2>/dev/null)" != "$BASE_ID" ]; then
    echo "==> creating $VENV" >&2
    "$BASE" -m venv --clear "$VENV"
    echo "$BASE_ID" >"$VENV/.python"
fi
# The stamp holds the checkout the editable installs point at: another checkout reinstalls.
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$PWD" ] || [ pyproject.toml -nt "$STAMP" ] \
    || [ emulator/pyproject.toml -nt "$STAMP" ] || [ scripts/test_newest.sh -nt "$STAMP" ]; then
    echo "==> installing llama-index-llms-ai21[tokenizer], the emulator and the dev group into $VENV" >&2
    # As ./dev does: --group needs pip >= 25.1, and the emulator goes in first.
    "$PY" -m pip install --quiet --disable-pip-version-check --upgrade "pip>=25.1"
    "$PY" -m pip install --quiet --disable-pip-version-check -e ./emulator
    "$PY" -m pip install --quiet --disable-pip-version-check -e ".[tokenizer]" --group dev
    echo "$PWD" >"$STAMP"
fi
exec "$PY" -m pytest -p no:cacheprovider -m "not slow" -n 2 -q "$@"
