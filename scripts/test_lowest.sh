#!/usr/bin/env bash
# The TLS, transport (HTTP layer) and lifecycle tests on the lowest versions pyproject.toml allows for the direct
# dependencies (each ">=X" floor pinned to "==X"), in a venv of their own that is kept between
# runs (rebuilt when pyproject.toml or this script changes). Usage: scripts/test_lowest.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/llama-index-llms-ai21"
VENV="$CACHE/venv-lowest"
PY="$VENV/bin/python"
STAMP="$VENV/.installed"
mkdir -p "$CACHE"
if [ ! -x "$PY" ]; then
    echo "==> creating $VENV" >&2
    python3 -m venv "$VENV"
fi
# The stamp holds the checkout the editable installs point at: another checkout reinstalls.
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$PWD" ] || [ pyproject.toml -nt "$STAMP" ] \
    || [ scripts/test_lowest.sh -nt "$STAMP" ]; then
    CONSTRAINTS="$VENV/constraints.txt"
    # Every direct runtime dependency at its floor.
    python3 - "$CONSTRAINTS" <<'PY'
import re, sys, tomllib
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
    "$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip
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
