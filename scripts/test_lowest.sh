#!/usr/bin/env bash
# The TLS, transport (HTTP layer) and lifecycle tests on the lowest versions pyproject.toml allows:
# the lowest Python (requires-python), where this machine has it, and the direct dependencies'
# floors (each ">=X" pinned to "==X"), in a venv of their own that is kept between runs (rebuilt
# when pyproject.toml, this script or the Python changes). Usage: scripts/test_lowest.sh [pytest args]
#
# The Python: the first of $LOWEST_PYTHON, python3.X on PATH and pyenv's newest 3.X.* that runs
# and is 3.X, the lowest requires-python names; without one, the default python3 (it says so).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/llama-index-llms-ai21"
VENV="$CACHE/venv-lowest"
PY="$VENV/bin/python"
STAMP="$VENV/.installed"
mkdir -p "$CACHE"

LOWEST=$(sed -n 's/^requires-python = ">=\([0-9]*\.[0-9]*\)".*/\1/p' pyproject.toml)
. scripts/python_version.sh
BASE=$(python_of "$LOWEST" "${LOWEST_PYTHON:-}")
if [ -n "$BASE" ]; then
    echo "==> Python $("$BASE" -c 'import platform; print(platform.python_version())') ($BASE)," \
        "the lowest requires-python allows" >&2
else
    BASE=python3
    echo "==> no Python $LOWEST here (\$LOWEST_PYTHON, python$LOWEST on PATH, pyenv's versions/$LOWEST.*):" \
        "falling back to the default python3, Python $(python3 -c 'import platform; print(platform.python_version())');" \
        "the lowest Python is NOT tested, only the dependencies' floors" >&2
fi
BASE_ID="$("$BASE" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
if [ ! -x "$PY" ] || [ "$(cat "$VENV/.python" 2>/dev/null)" != "$BASE_ID" ]; then
    echo "==> creating $VENV" >&2
    "$BASE" -m venv --clear "$VENV"
    echo "$BASE_ID" >"$VENV/.python"
fi
# The stamp holds the checkout the editable installs point at: another checkout reinstalls.
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$PWD" ] || [ pyproject.toml -nt "$STAMP" ] \
    || [ scripts/test_lowest.sh -nt "$STAMP" ]; then
    CONSTRAINTS="$VENV/constraints.txt"
    "$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip "tomli>=2; python_version < '3.11'"
    # Every direct runtime dependency at its floor.
    "$PY" - "$CONSTRAINTS" <<'PY'
import re, sys
if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
pins = []
for dep in deps:
    m = re.match(r"^([A-Za-z0-9_.\-\[\]]+?)(\[.*\])?\s*>=\s*([^,;\s]+)", dep)
    if m:
        pins.append(f"{m.group(1)}=={m.group(3)}")
open(sys.argv[1], "w").write("\n".join(pins) + "\n")
print("==> floors: " + ", ".join(pins), file=sys.stderr)
PY
    echo "==> installing the package at its dependencies' floors into $VENV" >&2
    "$PY" -m pip install --quiet --disable-pip-version-check -c "$CONSTRAINTS" -e . -e ./emulator \
        "pytest>=8" "pytest-asyncio>=0.24" "hypothesis>=6.100" "trustme>=1.1" "brotli>=1.1" \
        "psutil>=5.9"
    echo "$PWD" >"$STAMP"
fi
"$PY" -m pip list --disable-pip-version-check 2>/dev/null \
    | grep -iE '^(httpx|httpx-aiohttp|httpcore|aiohttp|ai21|tenacity|orjson|certifi|llama-index-core) ' >&2 || true
# Old llama-index-core attaches Field(validate_default=...) where today's pydantic (not a
# direct dependency, so not pinned) warns about it at import; that is all it does. Every other
# warning is an error, as in ./dev test (pyproject.toml), a connection left unclosed included.
exec "$PY" -m pytest -p no:cacheprovider -q \
    -W "ignore::pydantic.warnings.UnsupportedFieldAttributeWarning" \
    tests/transport tests/test_secrets_and_state.py tests/test_retry_policy.py "$@"
