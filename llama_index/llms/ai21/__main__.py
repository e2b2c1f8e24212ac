"""The demo: ``python -m llama_index.llms.ai21``.

With ``AI21_API_KEY`` set it talks to AI21; without it, it starts the AI21 emulator (the
``ai21-emulator`` distribution, the ``[emulator]`` extra) in this process and says so. Then it
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
def _llm(model: str) -> Iterator[tuple[AI21, Emulator | None]]:
    if os.environ.get("AI21_API_KEY"):
        print(f"Using the AI21 API ({os.environ.get('AI21_API_HOST') or 'api.ai21.com'}).")
        yield AI21(model=model), None
        return
    with _emulator() as emulator:
        print(
            f"AI21_API_KEY is not set: using the built-in AI21 emulator at {emulator.base_url} "
            "(deterministic canned answers, no network)."
        )
        yield AI21(model=model, api_key=emulator.api_key, base_url=emulator.base_url), emulator


EMULATOR_MISSING = """\
AI21_API_KEY is not set, so the demo would use the AI21 emulator, which is not installed.
Install it with:  pip install "llama-index-llms-ai21[emulator]"
or set AI21_API_KEY to use AI21's API."""


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

With AI21_API_KEY set it talks to AI21 (AI21_API_HOST changes the host). Without it, it
starts the AI21 emulator on loopback and says so: canned, deterministic answers, no key and
no network needed (pip install "llama-index-llms-ai21[emulator]" installs the emulator)."""

EPILOG = """\
examples:
  python -m llama_index.llms.ai21                      # the emulator, no key needed
  AI21_API_KEY=... python -m llama_index.llms.ai21 --model jamba-large
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
        default="jamba-mini",
        help="the AI21 model to use: jamba-mini (default), jamba-large or a versioned name",
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
