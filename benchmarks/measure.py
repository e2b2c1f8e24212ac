"""Run one batch of one workload through one contender and measure it (stdlib only).

Shared by the benchmark process and by ``published_worker.py``, which runs in a separate
virtualenv with the published package and ai21 2.x: nothing here may import the package,
the SDK or httpx.

Client cost is ``time.process_time()`` (CPU of this process, all threads), never wall time,
so the emulator, which runs in another process, does not count.
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from benchmarks.prompts import SHORT_PROMPT, answer_text, long_prompt


class Contender(Protocol):
    """One way of calling the API. Each method does what a user of that client would."""

    name: str

    def call(self, prompt: str) -> str:
        """One non-streaming call; returns the answer text."""
        ...

    async def acall(self, prompt: str) -> str:
        """One async non-streaming call; returns the answer text."""
        ...

    def stream(self, prompt: str) -> Iterator[str]:
        """A streaming call; yields the non-empty text deltas."""
        ...

    def astream(self, prompt: str) -> AsyncIterator[str]:
        """An async streaming call; yields the non-empty text deltas."""
        ...


# Workload kinds. "mem_*" run under tracemalloc (which slows them down several times), so
# their CPU numbers are not comparable with the others and are not reported.
KINDS = ("call", "acall", "stream", "astream", "mem_stream", "mem_acall")


@dataclass(frozen=True)
class Spec:
    """One batch: ``calls`` calls of ``kind``, ``in_flight`` at a time (async), each
    answering ``tokens`` tokens (streams; 0 = the short answer)."""

    kind: str
    calls: int = 1
    in_flight: int = 1
    tokens: int = 0

    def prompt(self) -> str:
        return long_prompt(self.tokens) if self.tokens else SHORT_PROMPT


@dataclass
class Sample:
    """What one batch cost."""

    cpu: float  # client CPU seconds for the batch
    wall: float  # wall seconds for the batch
    calls: int
    chunks: int = 0  # content chunks received, all calls together
    ttft: list[float] = field(default_factory=list)  # wall s from call to first chunk
    ttft_cpu: list[float] = field(default_factory=list)  # client CPU s until first chunk
    peak: int = 0  # tracemalloc peak above the starting level, bytes
    text_bytes: int = 0  # UTF-8 size of one answer

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sample:
        return cls(**data)


class ContenderError(RuntimeError):
    """A contender gave a wrong answer (so its numbers would be meaningless)."""


def run(contender: Contender, spec: Spec, loop: asyncio.AbstractEventLoop) -> Sample:
    """Run one batch and return what it cost."""
    if spec.kind not in KINDS:
        raise ValueError(f"unknown workload kind {spec.kind!r}")
    prompt = spec.prompt()  # built (and cached) before the clock starts
    batches: dict[str, Callable[[], Sample]] = {
        "call": lambda: _calls(contender, spec, prompt),
        "acall": lambda: loop.run_until_complete(_acalls(contender, spec, prompt)),
        "stream": lambda: _stream_calls(contender, spec, prompt),
        "astream": lambda: loop.run_until_complete(_astream_calls(contender, spec, prompt)),
    }
    batches["mem_stream"] = batches["stream"]
    batches["mem_acall"] = batches["acall"]
    batch = batches[spec.kind]
    sample = _traced(batch) if spec.kind.startswith("mem_") else _timed(batch)
    if spec.tokens:
        sample.text_bytes = len(answer_text(spec.tokens).encode())
    return sample


def _timed(batch: Callable[[], Sample]) -> Sample:
    # Start every batch from the same collector state: a batch then pays for the garbage it
    # makes itself, not for a full collection that earlier contenders' garbage made due.
    # Freezing what survives keeps the next collect (and any full collection inside a batch)
    # from walking the ~200,000 objects the imports left, which took ~0.3 s a batch.
    gc.collect()
    gc.freeze()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    sample = batch()
    sample.cpu = time.process_time() - cpu0
    sample.wall = time.perf_counter() - wall0
    return sample


def _traced(batch: Callable[[], Sample]) -> Sample:
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        sample = _timed(batch)
        sample.peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return sample


def _check_answer(contender: Contender, text: str) -> None:
    if not text:
        raise ContenderError(f"{contender.name}: empty answer")


def _calls(contender: Contender, spec: Spec, prompt: str) -> Sample:
    for _ in range(spec.calls):
        _check_answer(contender, contender.call(prompt))
    return Sample(cpu=0.0, wall=0.0, calls=spec.calls)


async def _acalls(contender: Contender, spec: Spec, prompt: str) -> Sample:
    per_worker, extra = divmod(spec.calls, spec.in_flight)

    async def worker(count: int) -> None:
        for _ in range(count):
            _check_answer(contender, await contender.acall(prompt))

    await asyncio.gather(*(worker(per_worker + (i < extra)) for i in range(spec.in_flight)))
    return Sample(cpu=0.0, wall=0.0, calls=spec.calls)


class _StreamTally:
    """Counts one stream's chunks and notes when the first one arrived."""

    def __init__(self, contender: Contender, spec: Spec, sample: Sample) -> None:
        self.contender, self.spec, self.sample = contender, spec, sample
        self.chunks = 0
        self.size = 0
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()

    def add(self, delta: str) -> None:
        if not self.chunks:
            self.sample.ttft.append(time.perf_counter() - self.wall0)
            self.sample.ttft_cpu.append(time.process_time() - self.cpu0)
        self.chunks += 1
        self.size += len(delta)

    def done(self) -> None:
        expected = self.spec.tokens
        if expected and self.chunks != expected:
            raise ContenderError(
                f"{self.contender.name}: expected {expected} chunks, got {self.chunks}"
            )
        if not self.chunks:
            raise ContenderError(f"{self.contender.name}: the stream had no content")
        self.sample.chunks += self.chunks


def _stream_calls(contender: Contender, spec: Spec, prompt: str) -> Sample:
    sample = _new_stream_sample(spec)
    for _ in range(spec.calls):
        tally = _StreamTally(contender, spec, sample)
        for delta in contender.stream(prompt):
            tally.add(delta)
        tally.done()
    return sample


async def _astream_calls(contender: Contender, spec: Spec, prompt: str) -> Sample:
    sample = _new_stream_sample(spec)
    for _ in range(spec.calls):
        tally = _StreamTally(contender, spec, sample)
        async for delta in contender.astream(prompt):
            tally.add(delta)
        tally.done()
    return sample


def _new_stream_sample(spec: Spec) -> Sample:
    return Sample(cpu=0.0, wall=0.0, calls=spec.calls)
