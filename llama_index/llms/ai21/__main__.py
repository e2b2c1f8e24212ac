"""The demo: ``python -m llama_index.llms.ai21``.

With ``AI21_API_HOST`` set it talks to that server (a vLLM or llama.cpp server of your own
serving Jamba's open weights: its ``/v1`` URL); else, with ``AI21_API_KEY`` set, to AI21's
hosted API (retired on 2026-08-09: it answers with an error that says so); else it starts the
AI21 emulator (the ``ai21-emulator`` distribution, the ``[emulator]`` extra) in this process and
says so. Then it
shows a completion, a chat with ``preamble_override``, a streamed answer and a LlamaIndex query
engine over a few bundled paragraphs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from llama_index.core import Document, SummaryIndex
from llama_index.core.llms import ChatMessage

from llama_index.llms.ai21 import AI21
from llama_index.llms.ai21._models import DEFAULT_MODEL

if TYPE_CHECKING:
    from ai21_emulator import Emulator

PARAGRAPHS = [
    "AI21 Labs is an Israeli artificial intelligence company founded in 2017 by Yoav Shoham, "
    "Ori Goshen and Amnon Shashua. It builds language models for enterprises.",
    "Jamba is AI21's family of large language models. Jamba combines Transformer layers with "
    "Mamba state-space layers, which lets it handle a context window of 256K tokens.",
    "Jurassic-2 was AI21's earlier model line. The j2-light, j2-mid and j2-ultra models were "
    "retired in November 2024.",
    "LlamaIndex is a framework for building retrieval-augmented generation applications "
    "over your own data, with query engines, chat engines and agents.",
]
QUESTION = "How large is Jamba's context window?"


def _section(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


@contextlib.contextmanager
def _llm(model: str | None) -> Iterator[tuple[AI21, Emulator | None]]:
    if os.environ.get("AI21_API_HOST"):  # a server of your own: the model it serves by default
        llm = AI21(**({"model": model} if model else {}))
        print(f"Using the server at AI21_API_HOST ({llm.base_url}).")  # a password shows masked
        yield llm, None
        return
    if os.environ.get("AI21_API_KEY"):
        print(
            "Using AI21's hosted API (retired on 2026-08-09: expect an error that says so; set "
            "AI21_API_HOST to the /v1 URL of a server of your own instead)."
        )
        yield AI21(model=model or DEFAULT_MODEL), None
        return
    with _emulator() as emulator:
        print(
            "Neither AI21_API_HOST nor AI21_API_KEY is set: using the built-in AI21 emulator at "
            f"{emulator.base_url} (deterministic canned answers, no network)."
        )
        yield (
            AI21(
                model=model or DEFAULT_MODEL,
                api_key=emulator.api_key,
                base_url=emulator.base_url,
            ),
            emulator,
        )


EMULATOR_MISSING = """\
Neither AI21_API_HOST nor AI21_API_KEY is set, so the demo would use the AI21 emulator, which is
not installed. Install it with:  pip install "llama-index-llms-ai21[emulator]"
(from a checkout of the repository: pip install ./emulator)
or set AI21_API_HOST to the /v1 URL of a server of your own (vLLM, llama.cpp)."""


def _emulator() -> Emulator:
    # The emulator is an optional extra: imported only when the demo needs it.
    try:
        from ai21_emulator import Emulator
    except ModuleNotFoundError as error:
        if error.name != "ai21_emulator":
            raise
        raise SystemExit(EMULATOR_MISSING) from None
    return Emulator()


DESCRIPTION = """\
A tour of llama-index-llms-ai21: a completion, a chat with preamble_override, a streamed
answer, and a LlamaIndex query engine over a few bundled paragraphs.

With AI21_API_HOST set it talks to that server: the /v1 URL of a vLLM or llama.cpp server of
your own serving Jamba's open weights (the model it serves, unless --model says another).
Else, with AI21_API_KEY set, AI21's hosted API, retired on 2026-08-09 (it answers with an
error that says so). Else it starts the AI21 emulator on loopback and says so: canned,
deterministic answers, no key and no network needed (pip install
"llama-index-llms-ai21[emulator]" installs the emulator)."""

EPILOG = """\
examples:
  python -m llama_index.llms.ai21                      # the emulator, no key needed
  AI21_API_HOST=http://localhost:8000/v1 python -m llama_index.llms.ai21   # your vLLM
  python -m ai21_emulator --port 8021                  # just the emulator, for your own code"""


def _documentation_url() -> str | None:
    try:
        urls = importlib.metadata.metadata("llama-index-llms-ai21").get_all("Project-URL") or []
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return None
    return next((u.split(", ", 1)[1] for u in urls if u.startswith("Documentation, ")), None)


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m llama_index.llms.ai21``."""
    result = argparse.ArgumentParser(
        prog="python -m llama_index.llms.ai21",
        description=DESCRIPTION,
        epilog=EPILOG + (f"\n\ndocs: {url}" if (url := _documentation_url()) else ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    result.add_argument(
        "--model",
        default=None,
        help=(
            "the model: on your own server, the name it serves (default: the one it reports); "
            "on the emulator, jamba-mini (default), jamba-large or a versioned name"
        ),
    )
    return result


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    with _llm(args.model) as (llm, emulator):
        _section("1. complete")
        print(llm.complete("Paul Graham is "))

        _section("2. chat with preamble_override")
        messages = [
            ChatMessage(role="user", content="hello there"),
            ChatMessage(role="assistant", content="Arrrr, matey! How can I help ye today?"),
            ChatMessage(role="user", content="What is your name"),
        ]
        print(llm.chat(messages, preamble_override="You are a pirate with a colorful personality"))

        _section("3. stream_complete, token by token")
        if emulator is not None:  # pace the emulator like a real model, so streaming shows
            from ai21_emulator import Fault

            emulator.inject(Fault(stream_delay=0.03))
        for chunk in llm.stream_complete("Tell me a short story about a lighthouse."):
            print(chunk.delta, end="", flush=True)
        print()

        _section("4. a LlamaIndex query engine over bundled paragraphs")
        index = SummaryIndex.from_documents([Document(text=text) for text in PARAGRAPHS])
        engine = index.as_query_engine(llm=llm)
        print(f"Q: {QUESTION}")
        print(f"A: {engine.query(QUESTION)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
