#!/usr/bin/env bash
# Mutation testing with mutmut (not part of CI): bash scripts/mutation.sh [mutmut run args]
#
# What is mutated and which tests run are [tool.mutmut] in pyproject.toml: the pure modules
# (_convert, _stream, _params, _dialect, _j2, _models, _deployments, _retry) against the pure
# tests and the emulator-backed adapter tests; mutmut runs, for each mutant, only the tests of
# that subset that execute the mutated function, so a mutant takes well under a second.
#
# The transports (_transport, _urllib3, _aiohttp) are not in the set: mutmut's trampoline
# changes how async generators close (_LoopClient._close_with_loop fails with "aclose():
# asynchronous generator is already running"), so their tests fail before any mutant runs.
#
# Afterwards: `.venv/bin/mutmut results` lists the survivors, `.venv/bin/mutmut show NAME` one
# mutant's diff; the score per module is printed at the end. mutants/ (git-ignored) holds
# mutmut's copy of the tree; it is rebuilt from scratch on each run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || { echo "no .venv: run ./dev test once first" >&2; exit 1; }
"$PY" -m pip show mutmut >/dev/null 2>&1 \
    || "$PY" -m pip install --quiet --disable-pip-version-check "mutmut>=3.3,<4"
rm -rf mutants
.venv/bin/mutmut run "$@" || true  # it exits non-zero when mutants survive
.venv/bin/mutmut results --all true 2>/dev/null | "$PY" scripts/mutation_score.py
