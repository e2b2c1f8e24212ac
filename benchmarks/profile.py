"""Profile one workload through one in-process contender (cProfile), against the emulator.

    python -m benchmarks.profile package call --calls 500
    python -m benchmarks.profile package stream --tokens 10000 --calls 3 --sort tottime
    python -m benchmarks.profile sdk acall --calls 1024 --in-flight 64
    python -m benchmarks.profile openai-like stream --server vllm --tokens 1000 --calls 5

``--server vllm`` runs the emulator's vLLM flavour and takes its contenders (``package`` with
``deployment="openai-compatible"``, ``openai-like``, ``httpx``).

Warms up first, then profiles one batch and prints the top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time
import warnings

from benchmarks import contenders, measure
from benchmarks.emulator import EmulatorProcess
from benchmarks.runner import warmup_spec


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    names = {*contenders.FACTORIES, *contenders.VLLM_FACTORIES}
    parser.add_argument("contender", choices=sorted(names))
    parser.add_argument("kind", choices=["call", "acall", "stream", "astream"])
    parser.add_argument("--server", choices=["ai21", "vllm"], default="ai21")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=0)
    parser.add_argument("--sort", default="cumulative", choices=["cumulative", "tottime"])
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    factories = contenders.FACTORIES if args.server == "ai21" else contenders.VLLM_FACTORIES
    if args.contender not in factories:
        parser.error(f"{args.contender} does not run against --server {args.server}")
    warnings.simplefilter("ignore", DeprecationWarning)
    spec = measure.Spec(args.kind, calls=args.calls, in_flight=args.in_flight, tokens=args.tokens)
    with EmulatorProcess(flavour=args.server) as emulator:
        contender = factories[args.contender](emulator.base_url, emulator.api_key)
        loop = asyncio.new_event_loop()
        measure.run(contender, warmup_spec(spec), loop)
        profiler = cProfile.Profile(time.process_time)  # CPU, not time spent waiting
        profiler.enable()
        sample = measure.run(contender, spec, loop)
        profiler.disable()
        loop.run_until_complete(contenders.aclose_all([contender]))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    units = sample.chunks or sample.calls
    print(f"{args.contender} {spec}: {sample.cpu / units * 1e6:.1f} µs CPU per unit (profiled)")
    pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
