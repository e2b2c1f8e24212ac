"""``notebooks/ai21.ipynb`` runs top to bottom against the emulator, and the committed copy holds
the outputs of such a run.

The run is exactly what ``scripts/refresh_notebook.py`` does (it is imported from there): a fresh
``python3`` kernel, no ``AI21_*`` variables (so the notebook's deciding cell starts the emulator),
a timeout per cell, and any error fails the test. It happens twice: on this checkout's
interpreter, and (slow) as Colab would after the release, in a brand-new virtualenv that has
nothing but ipykernel, where the notebook's install cell installs the freshly built wheels. The
saved outputs, stderr included, are compared with both runs, so the notebook on GitHub and Colab
cannot drift from the code.
"""

from __future__ import annotations

import copy
import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "ai21.ipynb"
REFRESH = ".venv/bin/python scripts/refresh_notebook.py"
# Cell tag for outputs that legitimately differ between runs: the tokenizer cell (depends on
# cached files) and the agent (its parallel tool calls finish in either order).
VARIES = "output-varies"
FRESH_VENV_TIMEOUT = 300  # seconds, for each of: building the wheel, creating the venv

# What legitimately differs between two runs: the emulator's port, log timestamps, response ids.
_VOLATILE = [
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:PORT"),
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"), "TIMESTAMP"),
    (re.compile(r"chatcmpl-[0-9a-f-]+"), "chatcmpl-ID"),
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
    """Per code cell: its normalised stdout, stderr and results."""
    cells = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code" or VARIES in cell.metadata.get("tags", []):
            continue
        kinds: dict[str, str] = {}
        for output in cell.outputs:
            kind = output.get("name", output.output_type)
            kinds[kind] = kinds.get(kind, "") + _text(output)
        cells.append((index, cell.source, kinds))
    return cells


def _assert_same_outputs(committed: Any, executed: Any, where: str) -> None:
    for (index, source, saved), (_, _, fresh) in zip(
        _outputs(committed), _outputs(executed), strict=True
    ):
        assert saved == fresh, (
            f"cell {index} of notebooks/ai21.ipynb has outputs that a fresh run {where} no "
            f"longer gives; run `{REFRESH}` and commit the notebook.\n--- cell ---\n{source}"
        )


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


@pytest.mark.parametrize("key", [None, "own-server-key"], ids=["no-key", "with-api-key"])
def test_every_cell_runs_against_a_server_of_your_own(committed: Any, key: str | None) -> None:
    """With ``AI21_API_HOST`` set (here an emulated vLLM server, started with ``--api-key`` or
    without), every cell runs against that server: the model it serves, the key from
    ``AI21_API_KEY`` only where given; only the per-instance keys cell uses AI21's emulator."""
    from ai21_emulator import Emulator

    served = "ai21labs/AI21-Jamba2-3B"
    with Emulator(flavour="vllm", models=served, api_keys=[key] if key else None) as server:
        env = {"AI21_API_HOST": server.base_url, **({"AI21_API_KEY": key} if key else {})}
        executed = refresh.execute(copy.deepcopy(committed), env=env)
        chats = [r for r in server.requests if r.path == "/v1/chat/completions"]
    text = "\n".join(_text(o) for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "Using your server at http://127.0.0.1:PORT/v1" in text
    assert f"This is the AI21 emulator ({served})" in text
    assert "Unauthorized: Failed with http status code: 401" in text  # still AI21's emulator
    assert "called add({'a': 20, 'b': 22}) -> 42" in text
    assert "Invoice(customer='Acme Corp'" in text
    assert len(chats) >= 10
    assert {r.json["model"] for r in chats} == {served}
    assert {r.api_key for r in chats} == {key}


def test_committed_notebook_holds_the_outputs_of_a_run(committed: Any, executed: Any) -> None:
    code = [cell for cell in committed.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), (
        f"notebooks/ai21.ipynb was not saved from one top-to-bottom run; run `{REFRESH}`"
    )
    _assert_same_outputs(committed, executed, "on this checkout")


def test_notebook_is_valid_and_ready_for_colab(committed: Any) -> None:
    nbformat.validate(committed)
    first = committed.cells[0]
    assert first.cell_type == "markdown"
    assert "colab-badge.svg" in first.source  # where it points: tests/test_llms_ai21.py
    install = committed.cells[2]
    # No import, no find_spec: the cell must work where nothing of LlamaIndex is installed,
    # and must bring a version that has the emulator.
    assert install.source == (
        '%pip install --quiet "llama-index-llms-ai21[tokenizer,emulator]>=0.9"'
    )
    assert committed.metadata.kernelspec.name == "python3"
    deciding = [c for c in committed.cells if "Emulator().start()" in c.source]
    assert len(deciding) == 1, "exactly one cell decides between AI21 and the emulator"
    assert 'os.environ.setdefault("HF_HUB_OFFLINE", "1")' in deciding[0].source


# ------------------------------------------------- as Colab would: a new venv and the wheel


def _run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=FRESH_VENV_TIMEOUT,
        check=False,
        **kwargs,
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}{result.stderr}"
    return result


@pytest.fixture(scope="session")
def wheel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the wheels of this checkout (the package and the emulator, which
    the notebook installs as its extra), built once per session."""
    dist = tmp_path_factory.mktemp("dist")
    for project in (ROOT, ROOT / "emulator"):
        _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(project)])
    assert len(list(dist.glob("llama_index_llms_ai21-*.whl"))) == 1
    assert len(list(dist.glob("ai21_emulator-*.whl"))) == 1
    return dist


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A brand-new virtualenv with ipykernel and nothing of LlamaIndex."""
    venv = tmp_path_factory.mktemp("notebook-venv") / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--quiet", "ipykernel"])
    missing = subprocess.run(
        [str(python), "-c", "import llama_index"], cwd=venv, capture_output=True, check=False
    )
    assert missing.returncode != 0, "the new venv must start without llama_index"
    return python


@pytest.mark.slow
def test_notebook_runs_in_a_fresh_venv_from_the_wheel(
    committed: Any, wheel_dir: Path, bare_venv: Path
) -> None:
    find_links = [str(wheel_dir), os.environ.get("PIP_FIND_LINKS", "")]
    env = {
        # pip finds the unreleased version here, as Colab will find it on the index.
        "PIP_FIND_LINKS": " ".join(filter(None, find_links)),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        # Colab has no pip configuration files; this machine's would add their own warnings.
        "PIP_CONFIG_FILE": os.devnull,
    }
    executed = refresh.execute(copy.deepcopy(committed), python=str(bare_venv), env=env)
    where = _run(
        [
            str(bare_venv),
            "-c",
            "import importlib.metadata as m, llama_index.llms.ai21 as p;"
            "print(m.version('llama-index-llms-ai21'), p.__file__)",
        ],
        cwd=bare_venv.parents[1],
    ).stdout.split()
    assert where[0] == importlib.metadata.version("llama-index-llms-ai21")
    assert Path(where[1]).is_relative_to(bare_venv.parents[1]), "installed from the wheel"
    _assert_same_outputs(committed, executed, "in a new venv from the wheel")


def test_the_kernel_cannot_reach_other_hosts() -> None:
    """The guard that makes the run provably offline is in place in the kernel."""
    probe = nbformat.v4.new_notebook()
    probe.metadata.kernelspec = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    probe.cells = [
        nbformat.v4.new_code_cell(
            "import socket\n"
            "try:\n"
            "    socket.getaddrinfo('api.ai21.com', 443)\n"
            "except OSError as exc:\n"
            "    print(exc)"
        )
    ]
    refresh.execute(probe)
    assert "blocked: this run is offline" in probe.cells[0].outputs[0].text
