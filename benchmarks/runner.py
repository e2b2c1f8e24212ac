"""Running workloads: every contender takes its turn each round (ABAB...), so machine noise
lands on all of them alike, and one contender's failure does not stop the others."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Protocol

from benchmarks import measure
from benchmarks.contenders import is_async_only, is_sync_streams_only
from benchmarks.measure import Sample, Spec
from benchmarks.workloads import Workload

# A tracemalloc'ed workload warms up on its untraced twin, so that one-off allocations
# (connection pools, caches) do not count as the peak.
_UNTRACED = {"mem_stream": "stream", "mem_acall": "acall"}
WARMUP_MAX_CALLS = 100


class Runner(Protocol):
    """Runs batches for one contender, in this process or another."""

    name: str

    def supports(self, workload: Workload) -> bool: ...

    def run(self, spec: Spec) -> Sample: ...


class LocalRunner:
    """A contender living in this process, on the benchmark's shared event loop."""

    def __init__(self, contender: measure.Contender, loop: asyncio.AbstractEventLoop) -> None:
        self.contender = contender
        self.name = contender.name
        self.loop = loop

    def supports(self, workload: Workload) -> bool:
        if is_sync_streams_only(self.contender):
            return workload.spec.kind == "stream"
        return workload.is_async or not is_async_only(self.contender)

    def run(self, spec: Spec) -> Sample:
        return measure.run(self.contender, spec, self.loop)


@dataclasses.dataclass
class Outcome:
    """Samples per contender (one per round), and the contenders that failed, with why."""

    samples: dict[str, list[Sample]]
    errors: dict[str, str]


def warmup_spec(spec: Spec) -> Spec:
    kind = _UNTRACED.get(spec.kind, spec.kind)
    return dataclasses.replace(
        spec,
        kind=kind,
        calls=min(spec.calls, WARMUP_MAX_CALLS),
        in_flight=min(spec.in_flight, WARMUP_MAX_CALLS),
    )


def run_workload(
    workload: Workload, runners: Sequence[Runner], say: Callable[[str], None]
) -> Outcome:
    """Warm every contender up, then run ``workload.rounds`` interleaved rounds."""
    active = [r for r in runners if r.supports(workload)]
    outcome = Outcome({r.name: [] for r in active}, {})

    def attempt(runner: Runner, spec: Spec) -> Sample | None:
        try:
            return runner.run(spec)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            outcome.errors[runner.name] = f"{type(exc).__name__}: {exc}"
            outcome.samples.pop(runner.name, None)
            active.remove(runner)
            return None

    warmup = warmup_spec(workload.spec)
    for runner in list(active):
        attempt(runner, warmup)
    for round_number in range(workload.rounds):
        order = active if round_number % 2 == 0 else active[::-1]
        for runner in list(order):
            sample = attempt(runner, workload.spec)
            if sample is not None:
                outcome.samples[runner.name].append(sample)
        say(f"  round {round_number + 1}/{workload.rounds} done")
    return outcome
