"""``python -m benchmarks.in_situ``: what LlamaIndex's per-chunk work costs next to a live stream.

The ``floor`` contender measures LlamaIndex's share of a streamed chunk (its ``llm_chat_callback``
wrapper, which builds an ``LLMChatInProgressEvent`` per chunk, and the ``ChatResponse`` a chunk
is) with no I/O and no parser beside it. The own-share target subtracts that figure from the
package's chunk. This measures the same work where it really runs, between a live stream's
transport and parser, per chunk of a burst stream of ``--tokens`` tokens, median of
``--rounds`` interleaved rounds:

- ``package``: ``AI21.stream_chat`` (through LlamaIndex's wrapper);
- ``package unwrapped``: the same stream without the wrapper (``AI21._stream_chat``);
- ``wrapper in situ``: the difference of the two;
- ``wrapper alone``: the wrapper's per-chunk event built over the same responses, from a list;
- ``uuid4 in situ`` / ``uuid4 alone``: one ``str(uuid.uuid4())`` (part of every event) per
  chunk, inside the live unwrapped stream's loop and inside a loop over a list.

No targets: the figures in ``benchmarks/README.md`` for judging the own-share target.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import uuid
from collections.abc import Callable, Iterable

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.llm import LLMChatInProgressEvent

from benchmarks.emulator import EmulatorProcess
from benchmarks.prompts import long_prompt
from llama_index.llms.ai21 import AI21

# The dispatcher LlamaIndex's llm_chat_callback sends its events through.
_dispatcher = get_dispatcher("llama_index.core.llms.callbacks")


def _per_chunk(run: Callable[[], int]) -> float:
    """Client CPU per chunk of one ``run`` (which returns the chunks it handled), in µs."""
    gc.collect()
    start = time.process_time()
    chunks = run()
    return (time.process_time() - start) / max(chunks, 1) * 1e6


def _with_uuid(chunks: Iterable[object]) -> int:
    count = 0
    for _ in chunks:
        str(uuid.uuid4())
        count += 1
    return count


def _count(chunks: Iterable[object]) -> int:
    return sum(1 for _ in chunks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.in_situ")
    parser.add_argument("--tokens", type=int, default=1000, help="tokens in each stream")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args(argv)
    messages = [ChatMessage(role="user", content=long_prompt(args.tokens))]
    with EmulatorProcess() as emulator:
        llm = AI21(
            api_key=emulator.api_key,
            base_url=emulator.base_url,
            model=emulator.model,
            max_retries=0,
        )
        collected = list(llm._stream_chat(messages))

        def events_alone() -> int:
            for response in collected:
                _dispatcher.event(
                    LLMChatInProgressEvent(messages=messages, response=response, span_id="s")
                )
            return len(collected)

        runs: dict[str, Callable[[], int]] = {
            "package": lambda: _count(llm.stream_chat(messages)),
            "package unwrapped": lambda: _count(llm._stream_chat(messages)),
            "wrapper alone": events_alone,
            "uuid4 in situ": lambda: _with_uuid(llm._stream_chat(messages)),
            "uuid4 alone": lambda: _with_uuid(collected),
            "empty loop": lambda: _count(collected),
        }
        try:
            for run in runs.values():  # warm-up: pools, imports, first calls
                run()
            samples: dict[str, list[float]] = {name: [] for name in runs}
            for round_ in range(args.rounds):
                order = list(runs.items())
                for name, run in order if round_ % 2 == 0 else reversed(order):
                    samples[name].append(_per_chunk(run))
        finally:
            llm.close()
    median = {name: statistics.median(values) for name, values in samples.items()}
    figures = {
        "package": median["package"],
        "package unwrapped": median["package unwrapped"],
        "wrapper in situ": median["package"] - median["package unwrapped"],
        "wrapper alone": median["wrapper alone"],
        "uuid4 in situ": median["uuid4 in situ"] - median["package unwrapped"],
        "uuid4 alone": median["uuid4 alone"] - median["empty loop"],
    }
    print(f"{'what':<18} {'CPU per chunk':>14}")
    for name, micros in figures.items():
        print(f"{name:<18} {micros:>11.1f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
