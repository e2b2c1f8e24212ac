"""Load with injected faults: ``python -m benchmarks.load [--requests 10000]``.

Sends ``--requests`` concurrent ``achat`` calls (``--in-flight`` at a time) through one ``AI21``
instance to the emulator in a separate process, while about ``--fault-rate`` of the requests
get a 429 or a 503 (with ``Retry-After: 0``). Reports how many calls completed with the right
answer, how many HTTP attempts the emulator saw (ideally calls + injected faults: one retry per
fault), the wall time, and the client's peak memory (Python heap by tracemalloc, and RSS).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
import tracemalloc
from typing import Any

import httpx
from llama_index.core.base.llms.types import ChatMessage

from benchmarks.emulator import EmulatorProcess
from llama_index.llms.ai21 import AI21


def _queue_faults(emulator: EmulatorProcess, requests: int, fault_rate: float) -> int:
    """Spread ``fault_rate`` of ``requests`` as 429s and 503s, alternating halves."""
    every = max(1, round(1 / fault_rate)) if fault_rate > 0 else 0
    if not every:
        return 0
    per_status = requests // every // 2
    faults = [
        {"status": status, "count": per_status, "every": every, "retry_after": "0"}
        for status in (429, 503)
        if per_status
    ]
    httpx.post(f"{emulator.root_url}/_emulator/faults", json=faults).raise_for_status()
    return per_status * len(faults)


async def _run(llm: AI21, requests: int, in_flight: int) -> tuple[int, int]:
    limit = asyncio.Semaphore(in_flight)
    right = failed = 0

    async def one(i: int) -> None:
        nonlocal right, failed
        async with limit:
            try:
                response = await llm.achat([ChatMessage(role="user", content=f"question {i}")])
            except Exception:
                failed += 1
                return
        right += f"question {i}" in (response.message.content or "")

    await asyncio.gather(*(one(i) for i in range(requests)))
    return right, failed


def run(requests: int, in_flight: int, fault_rate: float) -> dict[str, Any]:
    with EmulatorProcess() as emulator:
        injected = _queue_faults(emulator, requests, fault_rate)
        llm = AI21(api_key=emulator.api_key, base_url=emulator.base_url, max_retries=3)
        tracemalloc.start()
        started = time.perf_counter()
        right, failed = asyncio.run(_run(llm, requests, in_flight))
        wall = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        attempts = len(httpx.get(f"{emulator.root_url}/_emulator/requests").json())
    return {
        "requests": requests,
        "in_flight": in_flight,
        "injected_faults": injected,
        "completed_right": right,
        "failed": failed,
        "http_attempts": attempts,
        "extra_attempts": attempts - requests,
        "wall_seconds": round(wall, 2),
        "requests_per_second": round(requests / wall, 1),
        "peak_python_heap_mib": round(peak / 2**20, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--in-flight", type=int, default=256)
    parser.add_argument("--fault-rate", type=float, default=0.05)
    args = parser.parse_args(argv)
    result = run(args.requests, args.in_flight, args.fault_rate)
    print(json.dumps(result, indent=2))
    ok = result["completed_right"] == args.requests
    ok = ok and result["extra_attempts"] == result["injected_faults"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
