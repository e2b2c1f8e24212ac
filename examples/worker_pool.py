"""A pool of worker processes, each with its own AI21 instance, sharing one Jamba server.

Run it with one command::

    python examples/worker_pool.py
    AI21_API_HOST=http://localhost:8000/v1 python examples/worker_pool.py   # your own server

With ``AI21_API_HOST`` set it talks to your server (vLLM, llama.cpp, LM Studio, Ollama: the
``/v1`` URL); without it, it starts the emulator of a vLLM server (``ai21-emulator``, the
``[emulator]`` extra) in this process (no key, no network).

The workers are started with ``spawn`` (a fresh interpreter, as on macOS and Windows). A pickle of
an ``AI21`` carries no secret, so each worker builds its own instance in the pool's
initializer, from settings that are not secret; a key, if your server was started with
``--api-key``, would come from the worker's own environment.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

from llama_index.llms.ai21 import AI21

TEXTS = [
    "The lighthouse at Alexandria stood for sixteen centuries.",
    "Lighthouse keepers trimmed the wicks every few hours through the night.",
    "Fresnel lenses made a small flame visible twenty miles out at sea.",
    "Automated beacons replaced the last keepers in the late twentieth century.",
]

_llm: AI21 | None = None  # one per worker process, built by init_worker


def init_worker(base_url: str) -> None:
    """Runs once in each worker: the worker's own instance (and connection pool)."""
    global _llm
    _llm = AI21(base_url=base_url)  # model=: the one the server serves


def summarise(text: str) -> str:
    """The work each task does in a worker: one call to the server."""
    assert _llm is not None, "init_worker did not run"
    return f"[pid {os.getpid()}] {_llm.complete(f'Summarise in five words: {text}').text}"


@contextlib.contextmanager
def server_url() -> Iterator[str]:
    """Your server's /v1 URL, or an emulated vLLM server started here."""
    if os.environ.get("AI21_API_HOST"):
        print(f"Using your server at {os.environ['AI21_API_HOST']}.")
        yield os.environ["AI21_API_HOST"]
        return
    from ai21_emulator import Emulator

    with Emulator(flavour="vllm", models="ai21labs/AI21-Jamba2-3B") as emulator:
        print(f"AI21_API_HOST is not set: using an emulated vLLM server at {emulator.base_url}.")
        yield emulator.base_url


def main() -> int:
    with server_url() as base_url:
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=2, mp_context=spawn, initializer=init_worker, initargs=(base_url,)
        ) as pool:
            for summary in pool.map(summarise, TEXTS):
                print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
