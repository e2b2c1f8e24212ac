"""Every ``examples/*.py`` runs offline with one command, exit status 0, and prints something.

Each script is run as a user would run it (``python examples/<name>.py``) in a subprocess
without ``AI21_API_HOST`` or ``AI21_API_KEY``, so it starts the bundled emulator itself. The
scripts are found by glob, so new examples are picked up without touching this file. They run
in parallel, one per CPU. Some also run with ``AI21_API_HOST`` pointing at a server of the
user's own (here: the emulator's vLLM flavour, started by the test), as their docstrings say.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from ai21_emulator import Emulator

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
TIMEOUT = 120  # seconds, per example


def _load_refresh_script() -> ModuleType:
    """``scripts/refresh_notebook.py``, for its network guard (one definition for both runs)."""
    spec = importlib.util.spec_from_file_location(
        "refresh_notebook", ROOT / "scripts" / "refresh_notebook.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


refresh = _load_refresh_script()


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str


def offline_env(guard_dir: Path) -> dict[str, str]:
    """The caller's environment minus every AI21 setting, with this checkout importable and
    name lookups limited to loopback (the notebook run's ``sitecustomize`` guard)."""
    (guard_dir / "sitecustomize.py").write_text(refresh.LOOPBACK_ONLY, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI21_")}
    paths = [str(guard_dir), str(ROOT), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_example(path: Path, env: dict[str, str]) -> Run:
    try:
        result = subprocess.run(
            [sys.executable, str(path)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        return Run(-1, str(exc.stdout or ""), f"{exc.stderr or ''}\n[killed after {TIMEOUT} s]")
    return Run(result.returncode, result.stdout, result.stderr)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Run every example, as many at a time as there are CPUs (they are CPU-bound at start)."""
    env = offline_env(tmp_path_factory.mktemp("network-guard"))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = {path.name: pool.submit(run_example, path, env) for path in EXAMPLES}
        return {name: future.result() for name, future in futures.items()}


def test_there_are_examples() -> None:
    names = {path.name for path in EXAMPLES}
    assert {"quickstart.py", "streaming_chat.py", "offline_testing.py"} <= names


@pytest.mark.parametrize("name", [path.name for path in EXAMPLES])
def test_example_runs_offline(name: str, runs: dict[str, Run]) -> None:
    run = runs[name]
    report = f"--- stdout ---\n{run.stdout}\n--- stderr ---\n{run.stderr}"
    assert run.returncode == 0, f"examples/{name} exited with {run.returncode}\n{report}"
    assert run.stdout.strip(), f"examples/{name} printed nothing\n{report}"
    assert "Traceback" not in run.stdout + run.stderr, report


@pytest.mark.parametrize("name", [path.name for path in EXAMPLES])
def test_example_is_documented(name: str) -> None:
    page = (ROOT / "docs" / "notebook-and-examples.md").read_text(encoding="utf-8")
    assert f"examples/{name}" in page, f"list examples/{name} in docs/notebook-and-examples.md"


# Examples whose own-server path is run too: the quickstart (one process) and the worker pool
# (spawned processes, each building its own instance against the same server).
OWN_SERVER_EXAMPLES = ["quickstart.py", "worker_pool.py"]


@pytest.mark.parametrize("name", OWN_SERVER_EXAMPLES)
def test_example_runs_against_your_own_server(
    name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    env = offline_env(tmp_path_factory.mktemp("network-guard"))
    with Emulator(flavour="vllm", models="ai21labs/AI21-Jamba2-3B") as server:
        env["AI21_API_HOST"] = server.base_url
        run = run_example(ROOT / "examples" / name, env)
        report = f"--- stdout ---\n{run.stdout}\n--- stderr ---\n{run.stderr}"
        assert run.returncode == 0, f"examples/{name} exited with {run.returncode}\n{report}"
        assert f"Using your server at {server.base_url}." in run.stdout, report
        assert "emulated vLLM server" not in run.stdout, report
        chats = [r for r in server.requests if r.path == "/v1/chat/completions"]
        assert chats, f"examples/{name} sent nothing to the server it was given\n{report}"
        assert {r.json["model"] for r in chats} == {"ai21labs/AI21-Jamba2-3B"}, report
