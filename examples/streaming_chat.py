"""A streamed multi-turn chat, sync and async, with token counts and interruption handling.

Run it with one command (pass your own questions as arguments if you like)::

    python examples/streaming_chat.py
    python examples/streaming_chat.py "What is Jamba?" "How large is its context window?"
    AI21_API_HOST=http://localhost:8000/v1 python examples/streaming_chat.py   # your own server

With ``AI21_API_HOST`` set it talks to your Jamba server (its ``/v1`` URL: vLLM, llama.cpp,
LM Studio, Ollama); without it, it starts the emulator of a vLLM server (``ai21-emulator``, the
``[emulator]`` extra) in this process, and says so (no key, no network).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator

from llama_index.core.llms import ChatMessage, ChatResponse

from llama_index.llms.ai21 import AI21, StreamInterruptedError

SYSTEM = "You are a concise assistant who knows a lot about lighthouses."
QUESTIONS = [
    "What does a lighthouse keeper do?",
    "Which lighthouse is the oldest still in use?",
    "Tell me a short story about a lighthouse keeper and a storm.",
]


@contextlib.contextmanager
def jamba_server() -> Iterator[str]:
    """Your server's ``/v1`` URL (``AI21_API_HOST``), or an emulated vLLM server started here."""
    if os.environ.get("AI21_API_HOST"):
        print(f"Using your server at {os.environ['AI21_API_HOST']}.")
        yield os.environ["AI21_API_HOST"]
        return
    from ai21_emulator import Emulator

    with Emulator(flavour="vllm", models="ai21labs/AI21-Jamba2-3B") as emulator:
        print(f"AI21_API_HOST is not set: using an emulated vLLM server at {emulator.base_url}.")
        yield emulator.base_url


def chat_turn(llm: AI21, history: list[ChatMessage], question: str) -> None:
    """Ask one question, print the answer as it streams, and add both to ``history``."""
    history.append(ChatMessage(role="user", content=question))
    print(f"\nyou> {question}\njamba> ", end="", flush=True)
    last: ChatResponse | None = None
    try:
        for last in llm.stream_chat(history):
            print(last.delta, end="", flush=True)
    except StreamInterruptedError as exc:
        # The connection broke mid-answer: keep what arrived and say so.
        print(" [answer cut off]")
        history.append(ChatMessage(role="assistant", content=exc.partial_text))
        return
    print()
    if last is not None:
        history.append(last.message)
        usage = last.additional_kwargs
        print(
            f"      ({usage.get('prompt_tokens')} prompt + {usage.get('completion_tokens')} "
            f"completion tokens, finish_reason={usage.get('finish_reason')})"
        )


async def astream_answer(llm: AI21, question: str) -> str:
    """The async twin: stream one answer and return its text."""
    stream = await llm.astream_chat([ChatMessage(role="user", content=question)])
    text = ""
    async for chunk in stream:
        text += chunk.delta or ""
    return text


def main(argv: list[str]) -> int:
    questions = argv or QUESTIONS
    with jamba_server() as base_url:
        llm = AI21(base_url=base_url, system_prompt=SYSTEM)

        print("=== a streamed conversation ===")
        history: list[ChatMessage] = []
        for question in questions:
            chat_turn(llm, history, question)

        print("\n=== two async streams at once ===")

        async def both() -> list[str]:
            return await asyncio.gather(
                astream_answer(llm, "Name a famous lighthouse."),
                astream_answer(llm, "Why are lighthouses striped?"),
            )

        for answer in asyncio.run(both()):
            print(f"- {answer}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
