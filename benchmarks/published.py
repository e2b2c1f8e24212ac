"""The published llama-index-llms-ai21 0.8.0: its own virtualenv, and a runner that drives
``published_worker.py`` there (see that file for the line protocol)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.measure import Sample, Spec
from benchmarks.workloads import Workload

BENCH_DIR = Path(__file__).resolve().parent
VENV = BENCH_DIR / ".venv-published"
REQUIREMENT = "llama-index-llms-ai21==0.8.0"
WORKER = BENCH_DIR / "published_worker.py"
_STAMP = VENV / ".installed"


class PublishedUnavailable(RuntimeError):
    """The published package could not be installed or started."""


def ensure_venv() -> Path:
    """Create ``benchmarks/.venv-published`` with 0.8.0 installed (once); return its python."""
    python = VENV / "bin" / "python"
    if python.exists() and _STAMP.exists() and _STAMP.read_text() == REQUIREMENT:
        return python
    pip_install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    steps = [[sys.executable, "-m", "venv", "--clear", str(VENV)], [*pip_install, REQUIREMENT]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip()[-2000:]
            raise PublishedUnavailable(f"`{' '.join(step)}` failed:\n{tail}")
    _STAMP.write_text(REQUIREMENT)
    return python


class PublishedRunner:
    """Runs batches in the worker process; only one process runs at a time, so the two
    never compete for CPU, and the worker times itself."""

    name = "published"

    def __init__(self, python: Path, base_url: str, api_key: str, max_tokens: int) -> None:
        # No PYTHONPATH: it could put this repository's llama_index.llms.ai21 first.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        command = [str(python), str(WORKER), "--base-url", base_url, "--api-key", api_key]
        command += ["--max-tokens", str(max_tokens)]
        self._proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        ready = self._receive()
        if not ready.get("ready"):
            raise PublishedUnavailable(f"the worker did not start: {ready}")
        self.versions: dict[str, str] = ready["versions"]
        self.unsupported: dict[str, str] = ready["errors"]

    def supports(self, workload: Workload) -> bool:
        return workload.spec.kind.removeprefix("mem_") not in self.unsupported

    def run(self, spec: Spec) -> Sample:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps({"spec": asdict(spec)}) + "\n")
        self._proc.stdin.flush()
        answer = self._receive()
        if "error" in answer:
            raise RuntimeError(f"published worker: {answer['error']}")
        return Sample.from_json(answer["sample"])

    def _receive(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise PublishedUnavailable(f"the worker exited (status {self._proc.wait()})")
        message: dict[str, Any] = json.loads(line)
        return message

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
