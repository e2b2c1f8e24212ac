"""``notebooks/ai21.ipynb`` runs top to bottom against the emulator, and the committed copy holds
the outputs of such a run.

The run is exactly what ``scripts/refresh_notebook.py`` does (it is imported from there): a fresh
``python3`` kernel on this interpreter, no ``AI21_*`` variables (so the notebook's deciding cell
starts the emulator), a timeout per cell, and any error fails the test. The saved outputs are then
compared with the fresh ones, so the notebook on GitHub and Colab cannot drift from the code.
"""

from __future__ import annotations

import copy
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "ai21.ipynb"
REFRESH = "python scripts/refresh_notebook.py"
# Cell tag for outputs that legitimately differ between runs: the tokenizer cell (depends on
# cached files) and the agent (its parallel tool calls finish in either order).
VARIES = "output-varies"

# What legitimately differs between two runs: the emulator's port, log timestamps, response ids.
_VOLATILE = [
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:PORT"),
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"), "TIMESTAMP"),
    (re.compile(r"chat-[0-9a-f]{32}"), "chat-ID"),
    (re.compile(r" at 0x[0-9a-f]+"), " at 0xADDRESS"),
]


def _load_refresh_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "refresh_notebook", ROOT / "scripts" / "refresh_notebook.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


refresh = _load_refresh_script()


def _text(output: Any) -> str:
    if output.output_type == "stream":
        text = f"[{output.name}] {output.text}"
    elif output.output_type in ("execute_result", "display_data"):
        text = "[result] " + str(output.get("data", {}).get("text/plain", ""))
    else:
        text = f"[{output.output_type}] {output.get('ename')}: {output.get('evalue')}"
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text


def _outputs(notebook: Any) -> list[tuple[int, str, dict[str, str]]]:
    """Per code cell: its normalised stdout and results. stderr carries only log lines (the
    ai21 SDK logs failed calls), which the kernel may flush into the next cell; it is left out."""
    cells = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code" or VARIES in cell.metadata.get("tags", []):
            continue
        kinds: dict[str, str] = {}
        for output in cell.outputs:
            kind = output.get("name", output.output_type)
            if kind != "stderr":
                kinds[kind] = kinds.get(kind, "") + _text(output)
        cells.append((index, cell.source, kinds))
    return cells


@pytest.fixture(scope="module")
def committed() -> Any:
    return nbformat.read(NOTEBOOK, as_version=4)


@pytest.fixture(scope="module")
def executed(committed: Any) -> Any:
    """A fresh top-to-bottom run of a copy of the notebook; any cell error fails here."""
    return refresh.execute(copy.deepcopy(committed))


def test_notebook_runs_top_to_bottom_against_the_emulator(executed: Any) -> None:
    code = [cell for cell in executed.cells if cell.cell_type == "code"]
    assert all(cell.execution_count == i for i, cell in enumerate(code, start=1))
    text = "\n".join(_text(o) for cell in code for o in cell.outputs)
    assert "using the AI21 emulator" in text
    assert "Unauthorized: Failed with http status code: 401" in text  # the BAD_KEY cell
    assert "called multiply({'a': 12, 'b': 7}) -> 84" in text  # the agent used both tools
    assert "called add({'a': 20, 'b': 22}) -> 42" in text
    assert "The result of multiply is 84." in text
    assert "Invoice(customer='Acme Corp'" in text
    assert "[error]" not in text


def test_committed_notebook_holds_the_outputs_of_a_run(committed: Any, executed: Any) -> None:
    code = [cell for cell in committed.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), (
        f"notebooks/ai21.ipynb was not saved from one top-to-bottom run; run `{REFRESH}`"
    )
    for (index, source, saved), (_, _, fresh) in zip(
        _outputs(committed), _outputs(executed), strict=True
    ):
        assert saved == fresh, (
            f"cell {index} of notebooks/ai21.ipynb has outputs that a fresh run no longer "
            f"gives; run `{REFRESH}` and commit the notebook.\n--- cell ---\n{source}"
        )


def test_notebook_is_valid_and_ready_for_colab(committed: Any) -> None:
    nbformat.validate(committed)
    first = committed.cells[0]
    assert first.cell_type == "markdown"
    assert "colab-badge.svg" in first.source
    install = committed.cells[2]
    assert "%pip install" in install.source
    assert "find_spec" in install.source, "the install cell must be a no-op where installed"
    assert committed.metadata.kernelspec.name == "python3"
    deciding = [c for c in committed.cells if "Emulator().start()" in c.source]
    assert len(deciding) == 1, "exactly one cell decides between AI21 and the emulator"
