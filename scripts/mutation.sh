#!/usr/bin/env bash
# Mutation testing with mutmut (not part of CI): bash scripts/mutation.sh [mutmut run args]
#
# What is mutated and which tests run are [tool.mutmut] in pyproject.toml: _convert, _stream,
# _dialect (with the request-field checks), _j2, _models, _deployments, _retry and the HTTP layer (_http), against the
# pure tests, the emulator-backed adapter tests and the HTTP tests on scripted servers; mutmut runs, for each mutant, only the tests of that
# subset that execute the mutated function.
#
# mutmut wraps every mutated function in a trampoline; for an async generator that wrapper
# is a second generator, and an event loop's shutdown then closes both at once ("aclose():
# asynchronous generator is already running"). So the package's async generators
# (_LoopClient._close_with_loop, _WriteWatch.pieces, _bounded, _astreamed) are shells
# marked `# pragma: no mutate block`, and what they call is mutated.
#
# Mutants of a module only: bash scripts/mutation.sh "llama_index.llms.ai21._http*"
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
# mutmut's first pass (which tests run which functions) now and then fails on a ContextVar
# of its own (MutmutCallStack) or crashes; a second start gets past it.
for attempt in 1 2; do
    rm -rf mutants
    log=$(mktemp)
    set +e
    .venv/bin/mutmut run "$@" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}  # non-zero as soon as one mutant survives
    set -e
    if [ "$status" -lt 128 ] && ! grep -q "failed to collect stats" "$log"; then
        rm -f "$log"
        break
    fi
    rm -f "$log"
    echo "mutmut's stats pass failed (attempt $attempt); starting again" >&2
done
.venv/bin/mutmut results --all true 2>/dev/null | "$PY" scripts/mutation_score.py
