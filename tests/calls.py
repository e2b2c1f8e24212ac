"""Drive any public method of the LLM the same way: sync, async, streaming or not."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse

from llama_index.llms.ai21 import AI21


@dataclass
class Outcome:
    text: str
    responses: list[Any]  # every response/chunk the caller saw


# Each public method, driven the same way: (name, is_chat, is_stream, is_async).
METHODS = [
    ("chat", True, False, False),
    ("stream_chat", True, True, False),
    ("achat", True, False, True),
    ("astream_chat", True, True, True),
    ("complete", False, False, False),
    ("stream_complete", False, True, False),
    ("acomplete", False, False, True),
    ("astream_complete", False, True, True),
]
METHOD_IDS = [m[0] for m in METHODS]


def call(llm: AI21, method: str, arg: Any, **kwargs: Any) -> Outcome:
    """Call ``method`` and drain it; returns the final text and every response seen."""
    name, _is_chat, is_stream, is_async = next(m for m in METHODS if m[0] == method)

    def final_text(response: ChatResponse | CompletionResponse) -> str:
        if isinstance(response, ChatResponse):
            return response.message.content or ""
        return response.text

    async def run_async() -> Outcome:
        result = await getattr(llm, name)(arg, **kwargs)
        if not is_stream:
            return Outcome(final_text(result), [result])
        chunks = [chunk async for chunk in result]
        return Outcome(final_text(chunks[-1]), chunks)

    if is_async:
        return asyncio.run(run_async())
    result = getattr(llm, name)(arg, **kwargs)
    if not is_stream:
        return Outcome(final_text(result), [result])
    chunks = list(result)
    return Outcome(final_text(chunks[-1]), chunks)


def arg_for(method: str, text: str = "Paul Graham is ") -> Any:
    is_chat = next(m[1] for m in METHODS if m[0] == method)
    return [ChatMessage(role="user", content=text)] if is_chat else text


def assert_notes(exc: BaseException, expected: list[str]) -> None:
    """The notes (PEP 678) the package added to ``exc``: ``expected`` on Python 3.11+; none on
    3.10, which has no ``add_note`` (the exception, class and message, is the same on both)."""
    if sys.version_info >= (3, 11):
        assert getattr(exc, "__notes__", None) == expected
    else:
        assert not hasattr(exc, "__notes__")
