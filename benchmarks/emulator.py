"""The emulator in a separate process (so its CPU is not the client's), and its request rate."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import httpx

from benchmarks.emulator_main import LONG_ANSWER_LIMIT
from benchmarks.prompts import MODEL, SHORT_PROMPT, VLLM_MODEL

REPO_ROOT = Path(__file__).resolve().parents[1]
API_KEY = "benchmark-key"
START_TIMEOUT = 30.0
# Per flavour: the API root the base URL ends with, and the model every contender asks for.
API_ROOTS = {"ai21": "/studio/v1", "vllm": "/v1"}
MODELS = {"ai21": MODEL, "vllm": VLLM_MODEL}


class EmulatorProcess:
    """``python -m benchmarks.emulator_main`` (the package's emulator CLI) as a child process.

    Use as a context manager; ``base_url`` is ``http://127.0.0.1:PORT/studio/v1``, or
    ``http://127.0.0.1:PORT/v1`` with ``flavour="vllm"`` (vLLM's OpenAI-compatible server).
    """

    max_tokens = LONG_ANSWER_LIMIT

    def __init__(self, api_key: str = API_KEY, flavour: str = "ai21") -> None:
        self.api_key = api_key
        self.flavour = flavour
        self.model = MODELS[flavour]
        self.base_url = ""
        self._proc: subprocess.Popen[str] | None = None
        self._log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in __exit__)

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def root_url(self) -> str:
        return self.base_url.removesuffix(API_ROOTS[self.flavour])

    def __enter__(self) -> EmulatorProcess:
        env = {**os.environ, "PYTHONPATH": _pythonpath()}
        command = [sys.executable, "-m", "benchmarks.emulator_main"]
        command += ["--host", "127.0.0.1", "--port", "0", "--api-key", self.api_key]
        command += ["--flavour", self.flavour]
        self._proc = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=self._log, text=True
        )
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], START_TIMEOUT)
        line = self._proc.stdout.readline().strip() if ready else ""
        if not line.startswith("http"):
            self.__exit__(None, None, None)
            self._log.seek(0)
            raise RuntimeError(f"the {self.flavour} emulator did not start:\n{self._log.read()}")
        self.base_url = line
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        self._log.close()

    def forget_requests(self) -> None:
        """Drop the emulator's record of past requests (it keeps every one, bodies included)."""
        httpx.delete(f"{self.root_url}/_emulator/requests").raise_for_status()

    def cpu_seconds(self) -> float | None:
        """CPU time the emulator process has used so far (Linux ``/proc``; else None)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pythonpath() -> str:
    current = os.environ.get("PYTHONPATH")
    return f"{REPO_ROOT}{os.pathsep}{current}" if current else str(REPO_ROOT)


@dataclass
class Rate:
    """Non-streaming requests per second as a plain client saw them (httpx one at a time,
    aiohttp when concurrent), with the emulator's own CPU per request."""

    requests: int
    in_flight: int
    per_second: float
    emulator_cpu_per_request_us: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "in_flight": self.in_flight,
            "per_second": round(self.per_second, 1),
            "emulator_cpu_per_request_us": _round(self.emulator_cpu_per_request_us),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _body(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": SHORT_PROMPT}]}


def measure_rate(emulator: EmulatorProcess, requests: int, in_flight: int) -> Rate:
    """Send ``requests`` short non-streaming requests, ``in_flight`` at a time."""
    headers = {"Authorization": f"Bearer {emulator.api_key}"}
    cpu0 = emulator.cpu_seconds()
    start = time.perf_counter()
    if in_flight == 1:
        with httpx.Client(base_url=emulator.base_url, headers=headers) as client:
            for _ in range(requests):
                client.post("/chat/completions", json=_body(emulator.model)).raise_for_status()
    else:
        asyncio.run(_concurrent(emulator, headers, requests, in_flight))
    elapsed = time.perf_counter() - start
    cpu1 = emulator.cpu_seconds()
    cpu = None if cpu0 is None or cpu1 is None else (cpu1 - cpu0) / requests * 1e6
    return Rate(requests, in_flight, requests / elapsed, cpu)


async def _concurrent(
    emulator: EmulatorProcess, headers: dict[str, str], requests: int, in_flight: int
) -> None:
    # Plain aiohttp: httpx's own async pool is far slower than the emulator at this concurrency
    # (that effect is one of the things the benchmark measures, not the emulator's rate).
    url = f"{emulator.base_url}/chat/completions"
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:

        async def worker(count: int) -> None:
            for _ in range(count):
                async with session.post(url, json=_body(emulator.model)) as response:
                    response.raise_for_status()
                    await response.read()

        await asyncio.gather(*(worker(requests // in_flight) for _ in range(in_flight)))
