"""Quickstart: complete, chat with ``preamble_override``, a configured instance, per-instance keys.

Run it with one command::

    python examples/quickstart.py
    AI21_API_HOST=http://localhost:8000/v1 python examples/quickstart.py   # your own server

With ``AI21_API_HOST`` set it talks to your Jamba server (vLLM, llama.cpp, LM Studio, Ollama:
the ``/v1`` URL; ``model=`` defaults to the model it serves); without it, it starts the emulator
of a vLLM server (``ai21-emulator``, the ``[emulator]`` extra) in this process, and says so (no
key, no network). The last part, per-instance keys, always runs against the emulator of AI21's
API: that API was retired on 2026-08-09, and code written for it keeps working there.
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
def jamba_server() -> Iterator[str]:
    """Your server's ``/v1`` URL (``AI21_API_HOST``), or an emulated vLLM server started here."""
    if os.environ.get("AI21_API_HOST"):
        print(f"Using your server at {os.environ['AI21_API_HOST']}.")
        yield os.environ["AI21_API_HOST"]
        return
    from ai21_emulator import Emulator

    with Emulator(flavour="vllm", models="ai21labs/AI21-Jamba2-3B") as emulator:
        print(
            f"AI21_API_HOST is not set: using an emulated vLLM server at {emulator.base_url} "
            "(canned answers, no network)."
        )
        yield emulator.base_url


def section(title: str) -> None:
    print(f"\n=== {title} ===")


def main() -> int:
    with jamba_server() as base_url:
        llm = AI21(base_url=base_url)  # no model=: the one the server serves

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

        section("a configured instance")
        configured = AI21(base_url=base_url, max_tokens=200, temperature=0.7)
        response = configured.complete("Write one sentence about lighthouses.")
        print(f"{configured.model}: {response.text}")
        print("tokens:", {k: v for k, v in response.additional_kwargs.items() if "tokens" in k})

    section("per-instance keys (AI21's API, emulated)")
    from ai21_emulator import Emulator

    with Emulator() as emulator:
        llm_good = AI21(model="jamba-mini", api_key=emulator.api_key, base_url=emulator.base_url)
        llm_bad = AI21(
            model="jamba-mini", api_key="BAD_KEY", base_url=emulator.base_url, max_retries=0
        )
        try:
            llm_bad.complete("Paul Graham is ")
        except ai21.errors.Unauthorized as exc:
            print(f"BAD_KEY was refused, as it should be: {exc}")
        print(f"the good instance still works: {llm_good.complete('Paul Graham is ').text[:60]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
