"""Quickstart: complete, chat with ``preamble_override``, a configured model, per-instance keys.

Run it with one command::

    python examples/quickstart.py

With ``AI21_API_KEY`` set it talks to AI21; without it, it starts the AI21 emulator
(``ai21-emulator``, the ``[emulator]`` extra) in this process, and says so (no key, no network).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import ai21.errors
from llama_index.core.llms import ChatMessage

from llama_index.llms.ai21 import AI21


@contextlib.contextmanager
def connection() -> Iterator[tuple[str, str]]:
    """``(api_key, base_url)`` of AI21, or of an emulator started here if there is no key."""
    api_key = os.environ.get("AI21_API_KEY")
    if api_key:
        base_url = os.environ.get("AI21_API_HOST") or "https://api.ai21.com/studio/v1"
        print(f"Using the AI21 API at {base_url}.")
        yield api_key, base_url
        return
    from ai21_emulator import Emulator

    with Emulator() as emulator:
        print(
            f"AI21_API_KEY is not set: using the built-in AI21 emulator at {emulator.base_url} "
            "(canned answers, no network)."
        )
        yield emulator.api_key, emulator.base_url


def section(title: str) -> None:
    print(f"\n=== {title} ===")


def main() -> int:
    with connection() as (api_key, base_url):
        llm = AI21(model="jamba-mini", api_key=api_key, base_url=base_url)

        section("complete")
        print(llm.complete("Paul Graham is "))

        section("chat with preamble_override")
        messages = [
            ChatMessage(role="user", content="hello there"),
            ChatMessage(role="assistant", content="Arrrr, matey! How can I help ye today?"),
            ChatMessage(role="user", content="What is your name"),
        ]
        response = llm.chat(
            messages, preamble_override="You are a pirate with a colorful personality"
        )
        print(response.message.content)

        section("a configured model")
        large = AI21(
            model="jamba-large", max_tokens=200, temperature=0.7, api_key=api_key, base_url=base_url
        )
        response = large.complete("Write one sentence about lighthouses.")
        print(response.text)
        print("tokens:", {k: v for k, v in response.additional_kwargs.items() if "tokens" in k})

        section("per-instance keys")
        llm_bad = AI21(model="jamba-mini", api_key="BAD_KEY", base_url=base_url, max_retries=0)
        try:
            llm_bad.complete("Paul Graham is ")
        except ai21.errors.Unauthorized as exc:
            print(f"BAD_KEY was refused, as it should be: {exc}")
        print(f"the good instance still works: {llm.complete('Paul Graham is ').text[:60]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
