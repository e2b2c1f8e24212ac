"""What is measured: the workloads, their sizes, and how many interleaved rounds each gets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from benchmarks.measure import Spec

SYNC_KINDS = frozenset({"call", "stream", "mem_stream"})
SERVERS = ("ai21", "vllm")  # the emulator flavour a workload runs against
BASELINE = {"ai21": "sdk", "vllm": "openai-like"}  # what each server's ratios are to


@dataclass(frozen=True)
class Workload:
    """One row of the results: a batch ``spec`` run ``rounds`` times by every contender of
    its ``server``."""

    key: str  # stable name in the JSON, e.g. "stream_chat_1000", "vllm_complete"
    title: str  # what the row says, e.g. "stream_chat, 1,000 tokens"
    group: str  # "call", "concurrency", "stream" or "memory"
    spec: Spec
    rounds: int
    server: str = "ai21"  # "ai21" (AI21's API) or "vllm" (vLLM's OpenAI-compatible server)

    @property
    def baseline(self) -> str:
        """The contender this workload's ratios are to."""
        return BASELINE[self.server]

    @property
    def is_async(self) -> bool:
        return self.spec.kind not in SYNC_KINDS

    @property
    def unit(self) -> str:
        """What CPU is reported per: a call, or a streamed chunk."""
        return "chunk" if "stream" in self.spec.kind else "call"


@dataclass(frozen=True)
class Plan:
    """All workloads of one run, and which of them the targets are judged on."""

    workloads: tuple[Workload, ...]
    stream_tokens: int  # stream size the per-chunk targets use
    target_in_flight: int  # concurrency the async CPU target uses
    memory_tokens: int
    memory_in_flight: int

    def only(self, names: set[str]) -> Plan:
        """Keep the workloads whose key, group or server is in ``names`` (all if none is)."""
        picked = tuple(w for w in self.workloads if names & {w.key, w.group, w.server})
        if not picked:
            return self
        return dataclasses.replace(self, workloads=picked)


def _plan(
    *,
    call_rounds: int,
    calls: int,
    in_flight: tuple[int, ...],
    async_rounds: int,
    stream_sizes: dict[int, tuple[int, int]],  # tokens -> (rounds, calls per batch)
    stream_tokens: int,
    target_in_flight: int,
    memory_tokens: int,
    memory_in_flight: int,
    memory_rounds: int,
    vllm_rounds: dict[str, int],  # group -> rounds on the vLLM flavour
) -> Plan:
    workloads = [
        Workload("complete", "complete()", "call", Spec("call", calls=calls), call_rounds),
        Workload("achat_x1", "achat()", "call", Spec("acall", calls=calls), call_rounds),
    ]
    for n in in_flight:
        batch = max(calls, 2 * n)
        spec = Spec("acall", calls=batch, in_flight=n)
        workloads.append(
            Workload(f"achat_x{n}", f"achat(), {n} in flight", "concurrency", spec, async_rounds)
        )
    for kind, method in (("stream", "stream_chat"), ("astream", "astream_chat")):
        for tokens, (rounds, per_batch) in stream_sizes.items():
            spec = Spec(kind, calls=per_batch, tokens=tokens)
            title = f"{method}(), {tokens:,} tokens"
            workloads.append(Workload(f"{method}_{tokens}", title, "stream", spec, rounds))
    workloads.append(
        Workload(
            f"memory_stream_{memory_tokens}",
            f"stream_chat(), {memory_tokens:,} tokens: peak memory",
            "memory",
            Spec("mem_stream", calls=1, tokens=memory_tokens),
            memory_rounds,
        )
    )
    workloads.append(
        Workload(
            f"memory_achat_x{memory_in_flight}",
            f"achat(), {memory_in_flight:,} concurrent: peak memory",
            "memory",
            Spec("mem_acall", calls=memory_in_flight, in_flight=memory_in_flight),
            # httpx's own pool (sdk, httpx) takes ~30-60 s per round here under tracemalloc
            1,
        )
    )
    workloads += _vllm_workloads(
        vllm_rounds, calls, target_in_flight, stream_tokens, stream_sizes[stream_tokens][1]
    )
    return Plan(tuple(workloads), stream_tokens, target_in_flight, memory_tokens, memory_in_flight)


def _vllm_workloads(
    rounds: dict[str, int], calls: int, in_flight: int, tokens: int, streams: int
) -> list[Workload]:
    """The workloads the vLLM targets are judged on, against the vLLM-flavoured emulator:
    ``package`` (``deployment="openai-compatible"``) next to ``OpenAILike``."""
    batch = max(calls, 2 * in_flight)
    rows = [
        ("complete", "complete()", "call", Spec("call", calls=calls)),
        ("achat_x1", "achat()", "call", Spec("acall", calls=calls)),
        (f"achat_x{in_flight}", f"achat(), {in_flight} in flight", "concurrency",
         Spec("acall", calls=batch, in_flight=in_flight)),
        (f"stream_chat_{tokens}", f"stream_chat(), {tokens:,} tokens", "stream",
         Spec("stream", calls=streams, tokens=tokens)),
        (f"astream_chat_{tokens}", f"astream_chat(), {tokens:,} tokens", "stream",
         Spec("astream", calls=streams, tokens=tokens)),
    ]  # fmt: skip
    return [
        Workload(f"vllm_{key}", f"{title} · vLLM", group, spec, rounds[group], server="vllm")
        for key, title, group, spec in rows
    ]


def full_plan() -> Plan:
    return _plan(
        call_rounds=12,
        # Batches long enough that a garbage collection landing in one is a small share of it.
        calls=100,  # 1,200 calls per contender
        in_flight=(16, 64, 256),
        async_rounds=6,
        stream_sizes={100: (8, 10), 1_000: (8, 4), 10_000: (5, 1)},
        stream_tokens=1_000,
        target_in_flight=64,
        memory_tokens=10_000,
        memory_in_flight=1_000,
        memory_rounds=2,
        vllm_rounds={"call": 12, "concurrency": 6, "stream": 8},
    )


def smoke_plan() -> Plan:
    """Every workload type once or twice, tiny: for tests, not for numbers."""
    return _plan(
        call_rounds=2,
        calls=3,
        in_flight=(8,),
        async_rounds=2,
        stream_sizes={30: (2, 1)},
        stream_tokens=30,
        target_in_flight=8,
        memory_tokens=200,
        memory_in_flight=20,
        memory_rounds=1,
        # the vLLM leg: each workload type once (after its warm-up)
        vllm_rounds={"call": 1, "concurrency": 1, "stream": 1},
    )
